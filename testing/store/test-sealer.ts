import type { Sealer } from '../../server/store/import-jobs.ts';

/** Seals by wrapping and refuses another context: enough for a test to see what was sealed where. */
export const testSealer: Sealer = {
  seal: (plain, context) => JSON.stringify({ context, plain }),
  open: (sealed, context) => {
    const s = JSON.parse(sealed) as { context: string; plain: string };
    if (s.context !== context) throw new Error('wrong context');
    return s.plain;
  },
};
