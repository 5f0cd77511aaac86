import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HandsetPlugin } from '../handset-plugin.ts';
import type { Value } from '../messages.ts';
import { pushEvent, rewriteRequest } from './plugins.ts';

/** Wraps bodies in `[tag, body]` on the way out and unwraps answers that carry its tag. */
function wrapper(tag: string): HandsetPlugin {
  return {
    request: (_method, body) => ({
      body: [tag, body ?? null],
      expandResponse: (answer) => {
        if (!Array.isArray(answer) || answer[0] !== tag) throw new Error(`not ${tag}: ${String(answer)}`);
        return answer[1] as Value;
      },
    }),
  };
}

describe('rewriteRequest', () => {
  test('later plugins rewrite what earlier ones made; answers are undone in the reverse order', () => {
    const { body, expand } = rewriteRequest([wrapper('a'), wrapper('b')], 'm', 'x');
    assert.deepEqual(body, ['b', ['a', 'x']]);
    assert.ok(expand);
    assert.equal(expand(['b', ['a', 'y']]), 'y');
    assert.throws(() => expand(['a', ['b', 'y']]), /not b/);
  });

  test('a plugin that leaves the request alone adds no way back', () => {
    const result = rewriteRequest([{ request: () => undefined }, {}], 'm', 'x');
    assert.deepEqual(result, { body: 'x' });
  });
});

describe('pushEvent', () => {
  test('plugins expand the event in turn; one that throws leaves it as it came', () => {
    const plugins: HandsetPlugin[] = [
      {
        expandEvent: () => {
          throw new Error('cannot read');
        },
      },
      { expandEvent: (name, body) => ({ name: `${name}.x`, body: [body ?? null] }) },
      { expandEvent: () => undefined },
    ];
    assert.deepEqual(pushEvent(plugins, 'e', 1, 5), { name: 'e.x', seq: 5, body: [1] });
    assert.deepEqual(pushEvent([], 'e', undefined, 6), { name: 'e', seq: 6 });
  });
});
