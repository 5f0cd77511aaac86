import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { currentRuntime, type RuntimeFacts, uwsUnavailable } from './uws-binary.ts';

const facts = (over: Partial<RuntimeFacts>, present: string[]): RuntimeFacts => ({
  platform: 'linux',
  arch: 'x64',
  abi: '115',
  packageDir: '/pkg',
  exists: (path) => present.includes(path),
  ...over,
});

describe('uwsUnavailable', () => {
  test('a binary for this platform, arch and ABI: available', () => {
    assert.equal(uwsUnavailable(facts({}, ['/pkg/binaries/uws_linux_x64_115.node'])), undefined);
  });

  test('Node 24 (ABI 137) with a package built up to Node 20: unavailable, naming the missing binary', () => {
    const why = uwsUnavailable(facts({ abi: '137' }, ['/pkg/binaries/uws_linux_x64_115.node']));
    assert.match(why ?? '', /ABI 137.*uws_linux_x64_137\.node/);
  });

  test('no package: unavailable', () => {
    assert.match(uwsUnavailable(facts({ packageDir: undefined }, [])) ?? '', /not installed/);
  });

  test('this machine: the answer matches whether the binary file is there', () => {
    const here = currentRuntime();
    assert.ok(here.packageDir, 'the pinned package is installed');
    const expected = here.exists(
      `${here.packageDir}/binaries/uws_${here.platform}_${here.arch}_${here.abi}.node`,
    );
    assert.equal(uwsUnavailable(here) === undefined, expected);
  });
});
