import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

test('secrets never appear in a log record, at any of the usual depths', () => {
  const { lines, stream } = capture();
  const logger = createLogger({ level: 'trace', nodeId: 'n1', destination: stream });
  const secret = 'S3CR3T-device-secret-value';
  logger.info({ imei: '356938035643809', secret }, 'device added');
  logger.info({ device: { imei: '356938035643809', secret } }, 'nested');
  logger.info({ req: { headers: { authorization: `Bearer ${secret}` } } }, 'http');
  logger.info({ session: { auth: { creds: { password: secret } } } }, 'deep');
  logger.info({ welcome: { resumeToken: secret, token: secret } }, 'welcome');
  logger.child({ jwtSecret: secret }).warn('child');
  logger.debug({ config: { jwtSecret: secret, data: '/d' } }, 'config');
  assert.equal(lines.length, 7);
  for (const line of lines) {
    assert.equal(line.includes(secret), false, line);
    assert.match(line, /\[redacted\]/);
    const record = JSON.parse(line);
    assert.equal(record.node, 'n1');
    assert.equal(typeof record.level, 'string');
  }
  // What is not secret stays readable.
  assert.match(lines[0]!, /356938035643809/);
});

test('the level filters', () => {
  const { lines, stream } = capture();
  const logger = createLogger({ level: 'warn', destination: stream });
  logger.info('hidden');
  logger.warn('shown');
  assert.deepEqual(
    lines.map((l) => JSON.parse(l).msg),
    ['shown'],
  );
});
