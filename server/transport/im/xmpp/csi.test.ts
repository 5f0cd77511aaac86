import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { ClientState } from './csi.ts';
import { NS } from './types.ts';

class Entity extends EventEmitter {
  sent: string[] = [];
  async send(el: XmlElement): Promise<void> {
    this.sent.push(el.toString());
  }
}
const features = (csi: boolean) =>
  xml('features', { xmlns: NS.stream }, csi ? xml('csi', { xmlns: NS.csi }) : undefined);
const inactive = `<inactive xmlns="${NS.csi}"/>`;

test('the state is sent when online and the server offers CSI, and said again on a fresh session', async () => {
  const entity = new Entity();
  const state = { online: true };
  const csi = new ClientState({ entity, isOnline: () => state.online });
  entity.emit('nonza', features(true));
  await csi.setActive(false);
  await csi.setActive(true);
  assert.deepEqual(entity.sent, [inactive, `<active xmlns="${NS.csi}"/>`]);
  await csi.setActive(false);
  entity.sent = [];
  await csi.restore();
  assert.deepEqual(entity.sent, [inactive]);
  await csi.setActive(true);
  entity.sent = [];
  await csi.restore();
  assert.deepEqual(entity.sent, [], 'active is what a server assumes');
});

test('nothing is sent while offline or to a server without CSI; the wish is kept', async () => {
  const entity = new Entity();
  const state = { online: false };
  const csi = new ClientState({ entity, isOnline: () => state.online });
  entity.emit('nonza', features(true));
  await csi.setActive(false);
  assert.deepEqual(entity.sent, []);
  await csi.restore();
  assert.deepEqual(entity.sent, [inactive]);
  entity.sent = [];
  entity.emit('nonza', features(false));
  state.online = true;
  await csi.setActive(false);
  await csi.restore();
  assert.deepEqual(entity.sent, []);
});
