import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import type { CliIo } from '../server/cli/io.ts';

/** The CLI's output kept in two strings, for a unit test of one command. */
export function captureIo(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    isTty: false,
    out: (t: string) => {
      io.stdout += t;
    },
    err: (t: string) => {
      io.stderr += t;
    },
  };
  return io;
}

/** A fresh directory, removed after the test (also when it fails). */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'mmgw-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Action = (...args: any[]) => Promise<number>;

/**
 * Runs one command of a CLI piece, the way server/cli/main.ts would but
 * without its error printing: a thrown error rejects, for the test to check.
 */
export async function runCliPiece(
  add: (parent: Command, host: { wrap(a: Action): (...args: any[]) => Promise<void>; io: CliIo }) => void,
  args: string[],
  io = captureIo(),
): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  const parent = new Command('device').exitOverride();
  let code: number | undefined;
  add(parent, {
    wrap:
      (action) =>
      async (...a) => {
        code = await action(...a);
      },
    io,
  });
  for (const sub of parent.commands) sub.exitOverride();
  await parent.parseAsync(args, { from: 'user' });
  return { code, stdout: io.stdout, stderr: io.stderr };
}
