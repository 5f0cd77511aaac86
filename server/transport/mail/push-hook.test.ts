import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { hookAuthorized, parseMailPushNotice } from './push-hook.ts';

const TOKEN = 'a-token-of-sixteen-or-more';

describe('push hook', () => {
  test('reads the Lua script’s body and the OX driver’s, ignoring the rest', () => {
    assert.deepEqual(
      parseMailPushNotice({
        user: 'a@x.test',
        event: 'messageNew',
        folder: 'INBOX',
        'imap-uid': 42,
        'imap-uidvalidity': 7,
      }),
      { user: 'a@x.test', folder: 'INBOX', uid: 42, uidValidity: 7 },
    );
    assert.deepEqual(parseMailPushNotice({ user: 'a', from: 'x', subject: 'y', unseen: 3 }, 'imap.x.test'), {
      user: 'a',
      folder: 'INBOX',
      host: 'imap.x.test',
    });
  });

  test('refuses what it cannot use with request.bad_input naming the field', () => {
    const field = (raw: unknown) => {
      try {
        parseMailPushNotice(raw);
      } catch (err) {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'request.bad_input');
        return err.field;
      }
      return 'accepted';
    };
    assert.equal(field(null), 'body');
    assert.equal(field([]), 'body');
    assert.equal(field({}), 'user');
    assert.equal(field({ user: '' }), 'user');
    assert.equal(field({ user: 'a', folder: 3 }), 'folder');
    assert.equal(field({ user: 'a', 'imap-uid': 0 }), 'imap-uid');
    assert.equal(field({ user: 'a', 'imap-uid': 1.5 }), 'imap-uid');
    assert.equal(field({ user: 'a', 'imap-uidvalidity': '7' }), 'imap-uidvalidity');
  });

  test('takes the token as Bearer or as the Basic password, nothing else', () => {
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    assert.equal(hookAuthorized(`Bearer ${TOKEN}`, TOKEN), true);
    assert.equal(hookAuthorized(`bearer  ${TOKEN}`, TOKEN), true);
    assert.equal(hookAuthorized(basic(`dovecot:${TOKEN}`), TOKEN), true);
    assert.equal(hookAuthorized(undefined, TOKEN), false);
    assert.equal(hookAuthorized('Bearer', TOKEN), false);
    assert.equal(hookAuthorized(`Bearer ${TOKEN}x`, TOKEN), false);
    assert.equal(hookAuthorized(basic(TOKEN), TOKEN), false);
    assert.equal(hookAuthorized(`Token ${TOKEN}`, TOKEN), false);
  });
});
