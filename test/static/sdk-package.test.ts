// A handset team imports the SDK as `mmgw/sdk` (package.json "exports"): the
// JavaScript of the build and the declarations tsconfig.sdk.json writes. Both
// are checked as such a team would meet them, from outside the repository.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from '../harness/dist.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

test('mmgw/sdk resolves to the build: the codec and the Handset', async () => {
  await ensureBuilt();
  // The package importing itself by name goes through its "exports" map, as a dependent would.
  // (A variable specifier: the type check must not need a build; the sources' types stand in.)
  const specifier = 'mmgw/sdk';
  const sdk: typeof import('../../device-protocol/index.ts') = await import(specifier);
  assert.match(import.meta.resolve(specifier), /\/dist\/device-protocol\/index\.js$/);
  assert.equal(typeof sdk.Handset, 'function');
  const frame = { kind: sdk.Kind.Ping, nonce: 7 } as const;
  assert.deepEqual(sdk.decodeFrame(sdk.encodeFrame(frame as never)), { ok: true, frame });
});

test('the declarations type-check a dependent that imports mmgw/sdk, and catch its type errors', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-sdk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A package as npm would install it (package.json and the declarations, written afresh here; no
  // @types/node: a handset team's project need not have it), beside the one dependency the SDK's
  // declarations name (pako, whose stream type the frame compressor's declarations mention).
  const pkg = join(dir, 'node_modules', 'mmgw');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(root, 'node_modules', 'pako'), join(dir, 'node_modules', 'pako'));
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.sdk.json'), '--outDir', join(pkg, 'dist')]);
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const compile = (source: string) => {
    writeFileSync(join(dir, 'main.ts'), source);
    try {
      execFileSync(
        process.execPath,
        [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', 'main.ts'],
        { cwd: dir, encoding: 'utf8' },
      );
      return '';
    } catch (err) {
      return String((err as { stdout?: string }).stdout);
    }
  };
  const ok = `import { type DecodeResult, decodeFrame, encodeFrame, GatewayError, Handset, Kind } from 'mmgw/sdk';
const frame: DecodeResult = decodeFrame(encodeFrame({ kind: Kind.Ping, nonce: 1 }));
const err: GatewayError = new GatewayError('internal', 'x');
export const used = [frame, err.code, Handset];
`;
  assert.equal(compile(ok), '');
  assert.match(compile(`${ok}export const wrong: string = encodeFrame({} as never);\n`), /TS2322/);
});
