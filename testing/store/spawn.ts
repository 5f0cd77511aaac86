/**
 * Runs registry-child.ts in a process of its own and SIGKILLs it once a line
 * of its stdout matches: the crash tests' kill -9 at a chosen moment.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./registry-child.ts', import.meta.url));

/** Starts the child and SIGKILLs it once `killWhen` matches a line of its stdout; resolves with every line. */
export function runAndKill(
  args: string[],
  killWhen: (line: string) => boolean,
  env: Record<string, string> = {},
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const lines: string[] = [];
    let stderr = '';
    let buffered = '';
    const guard = setTimeout(() => proc.kill('SIGKILL'), 120_000);
    proc.stderr.on('data', (d) => (stderr += d));
    proc.stdout.on('data', (d) => {
      buffered += d;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (killWhen(line)) proc.kill('SIGKILL');
      }
    });
    proc.on('error', reject);
    proc.on('exit', (codeOrNull, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL' && codeOrNull !== 0) reject(new Error(`child failed: ${stderr}`));
      else resolve(lines);
    });
  });
}
