/**
 * A `mmgw handset` process driven through its pipes, as a script or a person
 * would: lines in, and the lines it prints (JSON objects with `--json`, text
 * otherwise) kept in order, to wait for the ones that match.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { eventually } from '../../testing/index.ts';
import { MMGW_BIN, ROOT } from './gateway.ts';

export class CliHandset {
  /** What it printed so far: parsed objects with `--json`, else the text lines. */
  readonly lines: any[] = [];
  private readonly child: ChildProcessWithoutNullStreams;

  /** `mmgw handset ARGS` (`--json` among them for JSON lines). */
  constructor(args: string[], env: Record<string, string> = {}) {
    const json = args.includes('--json');
    this.child = spawn(process.execPath, [MMGW_BIN, 'handset', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: 'pipe',
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(json ? JSON.parse(line) : line);
    });
  }

  /** `mmgw handset --json` for a provisioned device, its secret from the environment. */
  static json(url: string, dev: { imei: string; secret: string }): CliHandset {
    return new CliHandset(['--json', '--url', url, '--imei', dev.imei, '--transport', 'ws'], {
      MMGW_DEVICE_SECRET: dev.secret,
    });
  }

  write(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  send(obj: Record<string, unknown>): void {
    this.write(JSON.stringify(obj));
  }

  /** The first line (from index `from`) that matches. */
  async next(what: string, match: (line: any) => boolean, from = 0, timeoutMs = 30_000): Promise<any> {
    return eventually(what, () => this.lines.slice(from).find(match), { timeoutMs }).catch((err: Error) => {
      throw new Error(`${err.message}; got ${JSON.stringify(this.lines)}`);
    });
  }

  /** Sends the object and waits for the answer with its id. */
  async ask(obj: Record<string, unknown>): Promise<any> {
    const from = this.lines.length;
    this.send(obj);
    return this.next(`answer to ${obj.id}`, (l) => l.id === obj.id, from);
  }

  /** Ends its input (it answers what was asked, then exits); its exit code. */
  async quit(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const guard = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(guard);
    return code;
  }
}
