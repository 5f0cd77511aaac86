/**
 * The README's tour, run (issue 13: every README example matches the real
 * output). The gateway starts as `npm start` does, on a terminal (under
 * script(1), so that it prints its banner), in a fresh directory whose ./data
 * is its data; then each block marked `<!-- readme-test: NAME -->` runs there
 * in bash, command by command, and each output and exit code is compared with
 * what the README shows (testing/readme-examples.ts: `…` and `<…>` match
 * anything, sizes and timings any number; a JSON object is compared as a
 * shape, `…` standing for members not shown).
 *
 * What the test puts in: `npx mmgw` is `node bin/mmgw.js` (what npx runs here,
 * without npm's start-up for every command); the README's ports 8080 and 8081
 * are the gateway's, free ones; `/path/to/data` is its data directory;
 * `<secret>` is the first secret a step printed (the provisioning step's). A step that sets a
 * variable (`TOKEN=$(curl …)`) passes it on to the steps after it,
 * as one shell would: it must not be empty or `null` (jq's answer to an error).
 * A step `npx mmgw start --opt value…` (the TLS section's) stops the gateway
 * and starts it again with those options, on the same data and free ports.
 *
 * The mail and chat tour: `npm run peers` runs (its script from package.json)
 * with the hook URL on the gateway's admin port (its default names 8081, the
 * admin port of `npm start`) and a free XMPP port for 5222; the gateway
 * starts again with the variables it printed, as the README's line says
 * (which must match the printed one), on the same admin port. The `mail` and
 * `im` blocks are lines for `mmgw handset --json`, each with its answer: fed
 * one at a time to a handset of the provisioned device, with `<imap>`,
 * `<smtp>` and 5222 the peers' ports and the made-up account ids ("m3f…")
 * what the gateway answered in their place; each answer is compared with the
 * README's as a JSON shape (testing/readme-examples.ts). Then the pushes the
 * prose shows (its inline `{"event":…}` objects) are awaited and compared
 * the same way, and the interactive forms it names are typed at a handset.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { parseHumanCommand } from '../../server/cli/handset-commands.ts';
import { eventually } from '../../testing/index.ts';
import {
  inlineCode,
  lineMismatch,
  outputMismatch,
  type ReadmeBlock,
  readmeBlocks,
} from '../../testing/readme-examples.ts';
import { CliHandset } from '../harness/cli-handset.ts';
import { MMGW_BIN, nextImei, provisionDevice, ROOT } from '../harness/gateway.ts';
import { freePort } from '../harness/nats.ts';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = readmeBlocks(README);
/** The marked blocks, in the README's order, as this test runs them. */
const TOUR = [
  'provision',
  'handset-refused',
  'handset-json',
  'manage',
  'peers',
  'mail',
  'im',
  'admin-api',
  'service-profile',
  'transcode',
  'registry',
  'tls',
  'ops-client-ca',
];
/** A step that sets a shell variable (`TOKEN=$(…)`): later steps of its block see its value. */
const ASSIGNMENT = /^([A-Za-z_]\w*)=/;
/** A step that starts the gateway (with other options): the test restarts its gateway so. */
const RESTART = /^npx mmgw start((?: --[a-z-]+ [\w.-]+)*)$/;
/** Blocks of lines for `mmgw handset --json`, each with its answer, rather than shell commands. */
const HANDSET_TOURS = new Set(['mail', 'im']);
/** The device the provisioning step adds. */
const IMEI = '356938035643809';
/** `npm start` with the variables `npm run peers` prints before it. */
const ENV_START = /^((?:[A-Z_]+=\S+ )+)npm start$/;
/** A made-up id of the README: a letter and hex digits, then `…` ("m3f…", "x4f2…"). */
const MADE_UP = /"([a-z][0-9a-f]{2,}…)"/g;

/** The one inline code span of the README that begins so. */
function prose(prefix: string): string {
  const spans = inlineCode(README, prefix);
  assert.equal(spans.length, 1, `the README has one \`${prefix}…\`, not ${spans.length}`);
  return spans[0] ?? '';
}

/**
 * The README's made-up ids and what the gateway answered in their place: the
 * first answer that shows one gives it its value (the answer's field of that
 * name); the lines after it say it where the README does.
 */
class MadeUpIds {
  private readonly known = new Map<string, string>();

  get(id: string): string {
    const value = this.known.get(id);
    assert.ok(value, `an answer gave ${id} before`);
    return value;
  }

  /** The text with every made-up id it names filled in. */
  fill(text: string): string {
    return text.replace(MADE_UP, (_, id: string) => JSON.stringify(this.get(id)));
  }

  /** A shown answer with its ids filled in; those shown for the first time are taken from the answer. */
  shown(text: string, answer: Record<string, unknown>): string {
    for (const [, key, id] of text.matchAll(/"(\w+)":"([a-z][0-9a-f]{2,}…)"/g)) {
      if (!key || !id || this.known.has(id)) continue;
      const value = answer[key];
      assert.ok(
        typeof value === 'string' && new RegExp(`^${id[0]}[0-9a-f]+$`).test(value),
        `"${key}" is an id like ${id}: ${JSON.stringify(answer)}`,
      );
      this.known.set(id, value);
    }
    return this.fill(text);
  }
}

/** `npm run peers` running: what it printed, and the ports of its servers. */
interface Peers {
  child: ChildProcess;
  out: string;
  imap: number;
  smtp: number;
  xmpp: number;
}

function block(name: string): ReadmeBlock {
  const b = blocks.get(name);
  assert.ok(b, `the README has no block marked readme-test: ${name}`);
  return b;
}

interface Ready {
  pid: number;
  devicePort: number;
  adminPort: number;
}

describe('the README tour, run', () => {
  let dir: string;
  let data: string;
  let terminal: ChildProcess | undefined;
  let screen = '';
  let ready: Ready;
  let secret: string | undefined;
  /** Shell variables the steps set so far. */
  const vars: Record<string, string> = {};
  let peers: Peers | undefined;
  const ids = new MadeUpIds();
  const handsets: CliHandset[] = [];

  const ports = (text: string) =>
    text.replaceAll(':8080', `:${ready.devicePort}`).replaceAll(':8081', `:${ready.adminPort}`);
  const shown = (lines: string[]) => lines.map((l) => ports(l).replaceAll('/path/to/data', data));

  /**
   * `npx mmgw start ARGS` on a terminal, in `dir`, with `env` added, on free
   * ports (the admin port given, if it is); until its ready file says it is up.
   */
  async function start(args: string, env: Record<string, string> = {}, adminPort = 0): Promise<void> {
    // `npm start` is `node bin/mmgw.js start`; any free ports instead of 8080 and 8081.
    const readyFile = join(dir, 'ready.json');
    rmSync(readyFile, { force: true });
    screen = '';
    const command = `exec ${process.execPath} ${MMGW_BIN} start ${args} --port 0 --admin-port ${adminPort} --ready-file ${readyFile}`;
    const term = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    terminal = term;
    term.stdout?.setEncoding('utf8').on('data', (d: string) => (screen += d));
    ready = await eventually(
      'the gateway is up',
      () => {
        assert.equal(term.exitCode, null, `the gateway stopped: ${screen}`);
        try {
          return JSON.parse(readFileSync(readyFile, 'utf8')) as Ready;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
  }

  /** SIGTERM to the gateway, until it is gone (SIGKILL after 30 s). */
  async function stop(): Promise<void> {
    const term = terminal;
    if (ready) {
      try {
        process.kill(ready.pid, 'SIGTERM');
      } catch {}
    }
    if (term && term.exitCode === null) {
      const pid = ready?.pid;
      const guard = setTimeout(() => {
        try {
          if (pid) process.kill(pid, 'SIGKILL');
        } catch {}
        term.kill('SIGKILL');
      }, 30_000);
      await new Promise((resolve) => term.once('exit', resolve));
      clearTimeout(guard);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mmgw-readme-'));
    data = join(dir, 'data');
    assert.deepEqual(
      block('start').steps.map((s) => s.command),
      ['npm start'],
    );
    await start('');
  });

  after(async () => {
    for (const h of handsets) await h.quit().catch(() => {});
    await stop();
    await stopPeers();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `npm run peers` (the script package.json names), calling the hook on `adminPort`; until it is up. */
  async function startPeers(adminPort: number): Promise<Peers> {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: { peers: string };
    };
    assert.equal(pkg.scripts.peers, 'node --import tsx scripts/peers.ts');
    const xmpp = await freePort();
    const hook = `http://127.0.0.1:${adminPort}/hooks/mail/new`;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/peers.ts', '--push-hook', hook, '--xmpp-port', String(xmpp)],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const started: Peers = { child, out: '', imap: 0, smtp: 0, xmpp };
    peers = started;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (started.out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (started.out += d));
    await eventually(
      'npm run peers is up',
      () => {
        assert.equal(child.exitCode, null, `npm run peers stopped: ${started.out}`);
        return started.out.includes('Ctrl-C stops all servers.');
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    const port = (label: string) =>
      Number(new RegExp(`^${label} +[\\d.]+:(\\d+) `, 'm').exec(started.out)?.[1]);
    started.imap = port('Dovecot IMAP');
    started.smtp = port('SMTP peer');
    assert.equal(port('Prosody XMPP'), xmpp, started.out);
    assert.ok(started.imap > 0 && started.smtp > 0, started.out);
    return started;
  }

  /** SIGTERM to `npm run peers` (it stops its servers), until it is gone (SIGKILL after 30 s). */
  async function stopPeers(): Promise<void> {
    const child = peers?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(guard);
  }

  /** The peers block: `npm run peers`, then the gateway again as it printed (the README's line). */
  async function peersBlock(b: ReadmeBlock): Promise<void> {
    const [run, restart, ...more] = b.steps;
    assert.match(run?.command ?? '', /^npm run peers\b/);
    assert.deepEqual(more, []);
    // Its default hook URL names 8081: the gateway's admin port, here a free one kept across the restart.
    const adminPort = ready.adminPort;
    const started = await startPeers(adminPort);
    const printed = started.out
      .split('\n')
      .map((l) => l.trim())
      .find((l) => ENV_START.test(l));
    assert.ok(printed, `npm run peers prints how to start the gateway:\n${started.out}`);
    const why = lineMismatch(restart?.command ?? '', printed);
    assert.equal(why, undefined, `README line ${b.line}: ${why}`);
    const env = Object.fromEntries(
      (ENV_START.exec(printed)?.[1] ?? '')
        .trim()
        .split(' ')
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    await stop();
    await start('', env, adminPort);
  }

  /** A handset of the provisioned device, as the README opens it (`--json` or interactive). */
  function handset(json: boolean): CliHandset {
    assert.ok(secret, 'a secret was printed before');
    const url = `ws://127.0.0.1:${ready.devicePort}`;
    const h = new CliHandset([...(json ? ['--json'] : []), '--url', url, '--imei', IMEI, '--secret', secret]);
    handsets.push(h);
    return h;
  }

  /** The README's text for this run: the peers' ports, and the ids answered so far. */
  function filled(text: string): string {
    assert.ok(peers, 'npm run peers runs (the peers block)');
    return ids.fill(
      text
        .replaceAll('<imap>', String(peers.imap))
        .replaceAll('<smtp>', String(peers.smtp))
        .replaceAll('"port":5222', `"port":${peers.xmpp}`),
    );
  }

  /** The prose's shape of a line (an inline `{…}` of the README) against a line the handset printed. */
  function asProseShows(prefix: string, line: unknown): void {
    const shown = ids.fill(prose(prefix));
    const why = lineMismatch(shown, JSON.stringify(line));
    assert.equal(why, undefined, `the README's ${shown}: ${why}`);
  }

  /** Each line of a handset block to `h`, its answer compared with the one shown; the answers. */
  async function handsetBlock(b: ReadmeBlock, h: CliHandset): Promise<any[]> {
    const answers: any[] = [];
    for (const step of b.steps) {
      const where = `README line ${b.line}, ${step.command}`;
      const answer = await h.ask(JSON.parse(filled(step.command)));
      answers.push(answer);
      assert.equal(step.expected.length, 1, `${where}: one answer shown`);
      const shown = ids.shown(step.expected[0] ?? '', answer);
      const why = lineMismatch(shown, JSON.stringify(answer));
      assert.equal(why, undefined, `${where}: ${why}`);
    }
    return answers;
  }

  /**
   * The block's `cmd` line again (a resend after a timeout): answered like the
   * first, `duplicate` said where the answer has a body (not im.send's on the
   * compact forms the handset speaks).
   */
  async function resend(b: ReadmeBlock, answers: any[], h: CliHandset, cmd: string): Promise<void> {
    const i = b.steps.findIndex((step) => step.command.includes(`"cmd":"${cmd}"`));
    const again = await h.ask({ ...JSON.parse(filled(b.steps[i]?.command ?? '')), id: 'again' });
    const duplicate = cmd === 'im.send' ? {} : { duplicate: true };
    assert.deepEqual(again, { ...answers[i], id: 'again', ...duplicate });
  }

  /** The mail tour, then what its prose promises: state pushes, mail.new as mail arrives, a wrong password. */
  async function mailTour(b: ReadmeBlock): Promise<void> {
    assert.ok(peers);
    const add = filled(b.steps[0]?.command ?? '');
    assert.ok(peers.out.split('\n').includes(add), `npm run peers prints the README's line to paste: ${add}`);
    const h = handset(true);
    await resend(b, await handsetBlock(b, h), h, 'mail.send');
    asProseShows(
      '{"event":"mail.account.state"',
      await h.next(
        'mail.account.state online',
        (l) => l.event === 'mail.account.state' && l.state === 'online',
      ),
    );
    // Mail arrives: one alice sends herself.
    const subject = `back to me ${Date.now()}`;
    const from = h.lines.length;
    const account = ids.get('m3f…');
    const sent = await h.ask({
      id: 's',
      cmd: 'mail.send',
      account,
      to: ['alice@example.test'],
      subject,
      text: 'hi',
      clientId: 'c-s',
    });
    assert.equal(sent.event, 'mail.sent', JSON.stringify(sent));
    asProseShows(
      '{"event":"mail.new"',
      await h.next('mail.new', (l) => l.event === 'mail.new' && l.header?.subject === subject, from),
    );
    // The token the gateway was started with is the one Dovecot's hook sends.
    const metrics = await (await fetch(`http://127.0.0.1:${ready.adminPort}/metrics`)).text();
    assert.match(metrics, /^mmgw_mail_push_hooks_total\{result="accepted"[^}]*\} [1-9]/m);
    assert.doesNotMatch(metrics, /^mmgw_mail_push_hooks_total\{result="unauthorized"/m);
    // A wrong password: the error the prose shows, and nothing stored.
    const wrong = JSON.parse(add) as { imap: { password: string } };
    wrong.imap.password = 'not-alice';
    asProseShows('{"id":"1","event":"error","code":"mail.auth_failed"', await h.ask(wrong));
    const accounts = await h.ask({ id: 'a', cmd: 'mail.accounts' });
    assert.deepEqual(
      accounts.accounts.map((a: { account: string }) => a.account),
      [account],
    );
    assert.equal(await h.quit(), 0);
  }

  /**
   * `mail sync <account> [folder]`, `im login … 5222` …: typed at the interactive
   * handset with the accounts of the tours (uid 1: the demo message), each
   * answered under its response event's name, not with an error or a usage line.
   */
  async function interactiveForms(): Promise<void> {
    const forms = [...inlineCode(README, 'mail '), ...inlineCode(README, 'im ')];
    assert.ok(forms.length > 0);
    const h = handset(false);
    for (const form of forms) {
      const line = filled(form)
        .replace(/ \[\w+\]/g, '')
        .replaceAll('<uid>', '1')
        .replaceAll('<account>', ids.get(form.startsWith('mail') ? 'm3f…' : 'x4f2…'))
        .replace(/ 5222$/, ` ${peers?.xmpp}`);
      const command = parseHumanCommand(line);
      assert.ok(command?.cmd === 'request' && command.event, `${form} is a service command`);
      const from = h.lines.length;
      h.write(line);
      const answer: string = await h.next(
        `the answer to ${line}`,
        (l: string) => !/^(push #\d+ |connected: |reconnecting |\s)/.test(l),
        from,
      );
      assert.ok(answer.startsWith(`${command.event}:`), `${line}: ${answer}`);
    }
    assert.equal(await h.quit(), 0);
  }

  /** The chat tour with Bob signed in on a second device, then the pushes its prose promises. */
  async function imTour(b: ReadmeBlock): Promise<void> {
    assert.ok(peers);
    const login = filled(b.steps[0]?.command ?? '');
    const printed = peers.out.split('\n');
    assert.ok(printed.includes(login), `npm run peers prints the README's line to paste: ${login}`);
    const bobLogin = printed.find((l) => l.includes('"im.login"') && l.includes('"bob@example.test"'));
    assert.ok(bobLogin, peers.out);
    const bob = CliHandset.json(
      `ws://127.0.0.1:${ready.devicePort}`,
      await provisionDevice(data, nextImei(), { operator: 'demo' }),
    );
    handsets.push(bob);
    const online = await bob.ask(JSON.parse(bobLogin));
    assert.equal(online.event, 'im.online', JSON.stringify(online));
    const h = handset(true);
    await resend(b, await handsetBlock(b, h), h, 'im.send');
    const message = await bob.next('im.message', (l) => l.event === 'im.message' && l.body === 'hi');
    asProseShows('{"event":"im.message"', message);
    assert.equal(message.account, online.account);
    // One message after the resend: Bob has it next (one stream keeps the order), its prev the first's.
    const next = {
      id: 'next',
      cmd: 'im.send',
      account: ids.get('x4f2…'),
      to: 'bob@example.test',
      body: 'hi again',
      clientId: 'c-2',
    };
    assert.equal((await h.ask(next)).event, 'im.sent');
    await bob.next('hi again', (l) => l.event === 'im.message' && l.body === 'hi again');
    const messages = bob.lines.filter((l) => l.event === 'im.message');
    assert.deepEqual(
      messages.map((l) => [l.body, l.prev]),
      [
        ['hi', message.prev],
        ['hi again', message.stanzaId],
      ],
    );
    asProseShows('{"event":"im.presence"', await h.next('im.presence', (l) => l.event === 'im.presence'));
    assert.equal(await h.quit(), 0);
    assert.equal(await bob.quit(), 0);
  }

  test('every marked block is run here', () => {
    assert.deepEqual([...blocks.keys()].sort(), ['start', 'start-banner', ...TOUR].sort());
  });

  test('npm start prints the banner the README shows', async () => {
    const expected = shown(block('start-banner').text);
    // The banner: what the terminal shows before the first JSON log line.
    const banner = await eventually('the banner', () => {
      const lines = screen.split(/\r?\n/);
      const end = lines.findIndex((l) => l.startsWith('{'));
      const text = (end < 0 ? lines : lines.slice(0, end)).join('\n');
      return text.split('\n').filter((l) => l.trim() !== '').length >= expected.length && text;
    });
    assert.equal(outputMismatch(expected, banner), undefined, outputMismatch(expected, banner));
  });

  for (const name of TOUR) {
    if (HANDSET_TOURS.has(name)) {
      test(`${name}: each answer as shown, and the pushes the prose shows`, async () => {
        await (name === 'mail' ? mailTour : imTour)(block(name));
      });
      if (name === 'im')
        test('the interactive forms the mail and chat tours name answer so', interactiveForms);
      continue;
    }
    test(`${name}: each command's output and exit code as shown`, async () => {
      if (name === 'peers') return peersBlock(block(name));
      if (name === 'transcode') await photo(join(dir, 'photo.jpg'));
      for (const step of block(name).steps) {
        assert.ok(!step.command.includes('<secret>') || secret, 'a secret was printed before');
        const restart = RESTART.exec(step.command)?.[1];
        if (restart !== undefined) {
          // The gateway of the tour stops, and starts again as the README says, on the same data.
          await stop();
          await start(restart);
          continue;
        }
        const assigned = ASSIGNMENT.exec(step.command)?.[1];
        const command = ports(step.command)
          .replaceAll('npx mmgw', `${process.execPath} ${MMGW_BIN}`)
          .replaceAll('<secret>', secret ?? '');
        const r = spawnSync('bash', ['-c', assigned ? `${command}\nprintf %s "$${assigned}"` : command], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, ...vars },
        });
        const where = `README line ${block(name).line}, ${step.command}`;
        assert.equal(r.status, step.exitCode, `${where}: exit ${r.status}\n${r.stdout}${r.stderr}`);
        if (assigned) {
          assert.ok(
            !['', 'null'].includes(r.stdout),
            `${where}: ${assigned} is ${r.stdout || 'empty'}\n${r.stderr}`,
          );
          vars[assigned] = r.stdout;
          continue;
        }
        if (step.expected.length > 0) {
          const why = outputMismatch(shown(step.expected), r.stdout + r.stderr);
          assert.equal(why, undefined, `${where}: ${why}`);
        }
        try {
          secret ??= (JSON.parse(r.stdout) as { secret?: string }).secret;
        } catch {}
      }
    });
  }
});

/** A 4000×3000 photo-sized JPEG (a gradient with detail, a few MB). */
async function photo(file: string): Promise<void> {
  const [width, height] = [4000, 3000];
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + Math.floor(i / 3000)) & 255;
  await sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 92 })
    .toFile(file);
}
