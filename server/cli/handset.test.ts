/**
 * Unit tests of the terminal handset's input and output handling. The whole
 * path against a real gateway is test/integration/handset-cli.test.ts.
 */

import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import {
  jsonToValue,
  parseHumanCommand,
  parseJsonCommand,
  runHandset,
  unreachable,
  valueToJson,
} from './handset.ts';

async function freeClosedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A port that takes connections and never answers (the handset waits, it is not refused). */
async function silentPort(t: { after(fn: () => void): void }): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** A terminal as readline sees one: the handset prompts on it and reads keys. */
function fakeTerminal(): { input: PassThrough; output: PassThrough; text(): string } {
  const input = Object.assign(new PassThrough(), { isTTY: true });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
  let text = '';
  output.on('data', (d) => (text += d));
  return { input, output, text: () => text };
}

function collect(stream: PassThrough): () => Record<string, unknown>[] {
  let text = '';
  stream.on('data', (d) => (text += d));
  return () =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
}

describe('JSON values', () => {
  test('bytes travel as {"$base64"} both ways, everything else as is', () => {
    const value = {
      a: [1, 'x', null, true],
      raw: new Uint8Array([1, 2, 3]),
      nested: { b: new Uint8Array(0) },
    };
    const json = valueToJson(value);
    assert.deepEqual(json, {
      a: [1, 'x', null, true],
      raw: { $base64: 'AQID' },
      nested: { b: { $base64: '' } },
    });
    assert.deepEqual(jsonToValue(JSON.parse(JSON.stringify(json))), value);
    // Only an object with exactly that one key is bytes.
    assert.deepEqual(jsonToValue({ $base64: 'AQID', other: 1 }), { $base64: 'AQID', other: 1 });
    assert.throws(
      () => jsonToValue({ $base64: '***' }),
      (e: { code: string }) => e.code === 'request.bad_input',
    );
  });
});

describe('parseJsonCommand', () => {
  test('parses every command', () => {
    assert.deepEqual(parseJsonCommand('{"id":"1","cmd":"ping"}'), {
      ok: true,
      command: { id: '1', cmd: 'ping' },
    });
    assert.deepEqual(parseJsonCommand('{"id":7,"cmd":"request","method":"sys.echo","body":{"x":1}}'), {
      ok: true,
      command: { id: '7', cmd: 'request', method: 'sys.echo', body: { x: 1 } },
    });
    assert.deepEqual(parseJsonCommand('{"cmd":"switch","transport":"poll"}'), {
      ok: true,
      command: { cmd: 'switch', transport: 'poll' },
    });
    assert.deepEqual(parseJsonCommand('{"cmd":"quit"}'), { ok: true, command: { cmd: 'quit' } });
  });

  test('a bad line is request.bad_input, with its id when it has one', () => {
    for (const line of ['not json', '[1]', '"x"', '{"id":"9"}', '{"cmd":"nope"}', '{"cmd":"request"}']) {
      const parsed = parseJsonCommand(line);
      assert.equal(parsed.ok, false, line);
      if (!parsed.ok) assert.equal(parsed.error.code, 'request.bad_input', line);
    }
    const withId = parseJsonCommand('{"id":"4","cmd":"switch","transport":"carrier-pigeon"}');
    assert.ok(!withId.ok && withId.id === '4');
  });

  test('a bad field gives its words and names the field', () => {
    const cases: Array<[line: string, field: string, message: string]> = [
      ['{"cmd":"request","method":""}', 'method', 'request needs a "method" string'],
      [
        '{"cmd":"request","method":"x","requestId":""}',
        'requestId',
        '"requestId" must be a non-empty string',
      ],
      [
        '{"cmd":"mail.sync","account":"a","timeoutMs":0}',
        'timeoutMs',
        '"timeoutMs" must be a positive number',
      ],
      // The body is checked before requestId, and a bad $base64 names where it is.
      [
        '{"cmd":"mail.sync","account":{"$base64":"*"},"requestId":5}',
        'body.account',
        'body.account.$base64 is not base64',
      ],
      ['{"cmd":"switch","transport":"pigeon"}', 'transport', 'switch needs "transport": "ws" or "poll"'],
      ['{"cmd":"toString"}', 'cmd', 'unknown cmd "toString"'],
      ['{"id":"5"}', 'cmd', 'missing "cmd"'],
    ];
    for (const [line, field, message] of cases) {
      const parsed = parseJsonCommand(line);
      assert.ok(!parsed.ok, line);
      assert.deepEqual(
        [parsed.error.code, parsed.error.field, parsed.error.message],
        ['request.bad_input', field, message],
      );
    }
  });

  test('a service command is a request named by its cmd, its other fields the body', () => {
    assert.deepEqual(
      parseJsonCommand('{"id":3,"cmd":"mail.sync","account":"a","requestId":"r","timeoutMs":500}'),
      {
        ok: true,
        command: {
          id: '3',
          cmd: 'request',
          method: 'mail.sync',
          body: { account: 'a' },
          requestId: 'r',
          timeoutMs: 500,
          event: 'mail.headers',
        },
      },
    );
  });
});

describe('push commands', () => {
  test('the JSON push.* commands are requests answered under their own event names', () => {
    const parsed = parseJsonCommand(
      '{"id":"p","cmd":"push.register","kind":"webpush","endpoint":"https://p.example/1","keys":{"p256dh":"k","auth":"a"}}',
    );
    assert.deepEqual(parsed, {
      ok: true,
      command: {
        id: 'p',
        cmd: 'request',
        method: 'push.register',
        body: { kind: 'webpush', endpoint: 'https://p.example/1', keys: { p256dh: 'k', auth: 'a' } },
        event: 'push.registered',
      },
    });
    const list = parseJsonCommand('{"cmd":"push.list"}');
    assert.ok(list.ok && list.command.cmd === 'request' && list.command.event === 'push.registrations');
  });

  test('the prompt words map to the same requests; wrong arity is request.bad_input with the usage', () => {
    assert.deepEqual(parseHumanCommand('push register https://p.example/1 k a'), {
      cmd: 'request',
      method: 'push.register',
      body: { kind: 'webpush', endpoint: 'https://p.example/1', keys: { p256dh: 'k', auth: 'a' } },
      event: 'push.registered',
    });
    assert.deepEqual(parseHumanCommand('push unregister w1'), {
      cmd: 'request',
      method: 'push.unregister',
      body: { id: 'w1' },
      event: 'push.unregistered',
    });
    assert.deepEqual(parseHumanCommand('push vapid'), {
      cmd: 'request',
      method: 'push.vapid',
      event: 'push.vapid',
    });
    for (const bad of ['push', 'push register https://p.example/1', 'push unregister', 'push list x']) {
      assert.throws(
        () => parseHumanCommand(bad),
        (e: { code: string; message: string }) =>
          e.code === 'request.bad_input' && /^usage: push/.test(e.message),
        bad,
      );
    }
  });
});

describe('parseHumanCommand', () => {
  test('maps the prompt commands', () => {
    assert.equal(parseHumanCommand('   '), undefined);
    assert.deepEqual(parseHumanCommand('echo hello world'), {
      cmd: 'request',
      method: 'sys.echo',
      body: 'hello world',
    });
    assert.deepEqual(parseHumanCommand('req sys.stream {"count":2}'), {
      cmd: 'request',
      method: 'sys.stream',
      body: { count: 2 },
    });
    assert.deepEqual(parseHumanCommand('req sys.info'), { cmd: 'request', method: 'sys.info' });
    assert.deepEqual(parseHumanCommand('switch ws'), { cmd: 'switch', transport: 'ws' });
    assert.deepEqual(parseHumanCommand('QUIT'), { cmd: 'quit' });
    assert.throws(
      () => parseHumanCommand('req x {bad'),
      (e: { code: string }) => e.code === 'request.bad_input',
    );
    assert.throws(
      () => parseHumanCommand('dance'),
      (e: { code: string }) => e.code === 'request.bad_input',
    );
  });
});

describe('runHandset', () => {
  test('a bad URL is config.invalid and exit code 2, before any connection', async () => {
    const output = new PassThrough();
    const lines = collect(output);
    const code = await runHandset({
      urls: ['ftp://x'],
      imei: '356938035643809',
      json: true,
      transport: 'ws',
      output,
    });
    assert.equal(code, 2);
    assert.deepEqual(
      lines().map((l) => [l.event, l.code]),
      [['error', 'config.invalid']],
    );
  });

  test('keeps running after bad lines, answers status, exits 0 at end of input', async (t) => {
    const port = await silentPort(t);
    const input = new PassThrough();
    const output = new PassThrough();
    const lines = collect(output);
    const done = runHandset({
      urls: [`ws://127.0.0.1:${port}`],
      imei: '356938035643809',
      secret: 's',
      json: true,
      transport: 'ws',
      input,
      output,
      handsetOptions: { backoff: { initialMs: 50, maxMs: 200 } },
      connectWaitMs: 300,
    });
    input.write('this is not json\n');
    input.write('{"id":"a","cmd":"fly"}\n');
    input.write('\n');
    input.end('{"id":"s","cmd":"status"}\n');
    assert.equal(await done, 0);
    const out = lines();
    assert.deepEqual(
      out.filter((l) => l.event === 'error').map((l) => [l.id, l.code]),
      [
        [undefined, 'request.bad_input'],
        ['a', 'request.bad_input'],
      ],
    );
    assert.deepEqual(
      out.find((l) => l.event === 'status'),
      { id: 's', event: 'status', session: null, transport: null, lastSeq: 0, url: `ws://127.0.0.1:${port}` },
    );
  });

  test('before any session, a URL that refuses the connection ends the handset at once with exit 2', async () => {
    const urls = [`ws://127.0.0.1:${await freeClosedPort()}`, `ws://127.0.0.1:${await freeClosedPort()}`];
    for (const [transport, list] of [
      ['ws', urls.slice(0, 1)],
      ['poll', urls.slice(0, 1)],
      ['auto', urls],
    ] as const) {
      const output = new PassThrough();
      const lines = collect(output);
      const code = await runHandset({
        urls: [...list],
        imei: '356938035643809',
        secret: 's',
        json: true,
        transport,
        input: new PassThrough(),
        output,
        // A retry would wait this long: the answer must not.
        handsetOptions: { backoff: { initialMs: 60_000, maxMs: 60_000 } },
      });
      assert.equal(code, 2, transport);
      const errors = lines().filter((l) => l.event === 'error');
      assert.equal(errors[0]?.code, 'request.unavailable', JSON.stringify(lines()));
      assert.match(String(errors[0]?.message), /connection refused/);
      for (const url of list) assert.ok(String(errors[0]?.message).includes(url), url);
    }
  });

  test('unreachable: refusals, unknown hosts and untrusted certificates, not timeouts or closes', () => {
    assert.equal(
      unreachable('WebSocket failed to open (1006; connect ECONNREFUSED 127.0.0.1:9)')?.why,
      'connection refused',
    );
    assert.equal(unreachable('fetch failed (getaddrinfo ENOTFOUND nowhere.invalid)')?.why, 'no such host');
    assert.equal(
      unreachable('WebSocket failed to open (1006; self-signed certificate)')?.why,
      'TLS certificate not accepted: self-signed certificate',
    );
    assert.equal(
      unreachable('POST failed: fetch failed (unable to verify the first certificate)')?.why,
      'TLS certificate not accepted: unable to verify the first certificate',
    );
    assert.match(unreachable('fetch failed (certificate has expired)')?.hint ?? '', /--ca FILE/);
    assert.equal(unreachable('no Welcome within 10000 ms'), undefined);
    assert.equal(unreachable('WebSocket closed (1006)'), undefined);
    assert.equal(unreachable(undefined), undefined);
  });

  test('at a prompt: one prompt per answer, a typo in plain words, Ctrl-C exits 130', async (t) => {
    const term = fakeTerminal();
    const done = runHandset({
      urls: [`ws://127.0.0.1:${await silentPort(t)}`],
      imei: '356938035643809',
      secret: 's',
      json: false,
      transport: 'ws',
      input: term.input,
      output: term.output,
    });
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    await settle();
    for (const line of ['pnig', 'status', '', 'switch pigeon']) {
      term.input.write(`${line}\r`);
      await settle();
    }
    term.input.write('\x03');
    assert.equal(await done, 130);
    // What a terminal shows, without the cursor moves readline adds around its prompt.
    const shown = term
      .text()
      .replace(new RegExp(`${String.fromCharCode(27)}\\[\\d*[GJK]`, 'g'), '')
      .replaceAll('\r', '');
    assert.match(shown, /\nunknown command "pnig" \(type help\)\n/);
    assert.match(shown, /\nusage: switch ws\|poll\n/);
    assert.doesNotMatch(shown, /request\.bad_input/);
    assert.doesNotMatch(shown, /mmgw> mmgw> /, JSON.stringify(shown));
    // One prompt each after the banner, the typo, status, the blank line and the usage slip.
    assert.equal(shown.split('mmgw> ').length - 1, 5, JSON.stringify(shown));
  });
});
