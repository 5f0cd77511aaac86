/**
 * Client state indication (XEP-0352): the session tells the server whether a
 * user is looking. Inactive while the handset is gone, so the server holds
 * back presence noise; said again on every fresh session.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { NS } from './types.ts';

export interface ClientStateEntity {
  send(element: XmlElement): Promise<void>;
  on(event: 'nonza', listener: (el: XmlElement) => void): unknown;
}

export class ClientState {
  readonly #entity: ClientStateEntity;
  readonly #isOnline: () => boolean;
  #offered = false;
  #inactive = false;

  constructor({ entity, isOnline }: { entity: ClientStateEntity; isOnline: () => boolean }) {
    this.#entity = entity;
    this.#isOnline = isOnline;
    entity.on('nonza', (el) => {
      if (el.is('features', NS.stream)) this.#offered = el.getChild('csi', NS.csi) !== undefined;
    });
  }

  async setActive(active: boolean): Promise<void> {
    this.#inactive = !active;
    if (this.#isOnline() && this.#offered) {
      await this.#entity.send(xml(active ? 'active' : 'inactive', { xmlns: NS.csi })).catch(() => {});
    }
  }

  /** On a fresh session (the server starts out assuming active). */
  async restore(): Promise<void> {
    if (this.#inactive && this.#offered) await this.#entity.send(xml('inactive', { xmlns: NS.csi }));
  }
}
