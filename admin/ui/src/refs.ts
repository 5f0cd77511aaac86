import { api } from './api.ts';

export type RefKind = 'operators' | 'operator-profiles' | 'services' | 'service-profiles' | 'capabilities';

export interface RefRecord {
  id: string;
  name: string;
  revision: number;
  createdAt: number;
  updatedAt: number;
  [key: string]: unknown;
}

/** The records of one kind of reference data (empty when the role may not read them). */
export async function listRefs(kind: RefKind): Promise<RefRecord[]> {
  try {
    return (await api<{ items: RefRecord[] }>(`/${kind}`)).items;
  } catch {
    return [];
  }
}

export interface RefChoices {
  operators: RefRecord[];
  operatorProfiles: RefRecord[];
  serviceProfiles: RefRecord[];
  capabilities: RefRecord[];
}

/** What a device can point to, for the selects of the device forms and filters. */
export async function loadRefChoices(): Promise<RefChoices> {
  const [operators, operatorProfiles, serviceProfiles, capabilities] = await Promise.all([
    listRefs('operators'),
    listRefs('operator-profiles'),
    listRefs('service-profiles'),
    listRefs('capabilities'),
  ]);
  return { operators, operatorProfiles, serviceProfiles, capabilities };
}
