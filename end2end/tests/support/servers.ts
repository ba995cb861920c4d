// Starts the real processes the end-to-end tests talk to (the release offboard binary, and
// later SCIM servers) on free loopback ports, and stops them by PID when the test ends.
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '../../..');
const cacheDir = path.join(os.homedir(), '.cache', 'offboard');
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(cacheDir, 'target');

export const offboardBin = process.env.OFFBOARD_BIN ?? path.join(targetDir, 'release', 'offboard');
export const siteRoot = process.env.OFFBOARD_SITE_ROOT ?? path.join(repoRoot, 'target', 'site');

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitFor(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** The account every console is set up with (through the setup link its log prints). */
export const FIRST_OWNER = {
  email: 'olive@offboard.test',
  name: 'Olive Owner',
  password: 'correct horse battery staple',
};

/** The first owner's session per console address, for `open()` (support/flow.ts). */
export const sessions = new Map<string, string>();

/** The session cookie (`offboard_session` value) a response set, if any. */
export function sessionCookie(res: Response): string | undefined {
  const set = res.headers.getSetCookie().find((c) => c.startsWith('offboard_session='));
  return set?.split(';')[0].slice('offboard_session='.length);
}

/** A running offboard console with its own data folder and log file. */
export class Console {
  child!: ChildProcess;
  readonly logFile: string;
  constructor(
    readonly port: number,
    readonly dataDir: string,
    readonly extraEnv: Record<string, string> = {},
  ) {
    this.logFile = path.join(dataDir, 'server.log');
  }

  get baseURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The first owner's session cookie once set up (see `setUpFirstOwner`). */
  cookie = '';

  get cookieHeader(): string {
    return `offboard_session=${this.cookie}`;
  }

  /**
   * Starts a console; unless `setUp` is false, creates the first owner from the setup link
   * in its log and keeps their session (used by `open()` for every page).
   */
  static async start(extraEnv: Record<string, string> = {}, setUp = true): Promise<Console> {
    if (!fs.existsSync(offboardBin)) {
      throw new Error(`${offboardBin} is missing: run \`make build\` first`);
    }
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-'));
    const c = new Console(await freePort(), dataDir, extraEnv);
    await c.launch();
    if (setUp) await c.setUpFirstOwner();
    return c;
  }

  /** The code of the newest setup link the log printed, if any. */
  setupCode(): string | undefined {
    const found = [...this.log().matchAll(/\/setup\?code=([A-Za-z0-9_-]+)/g)];
    return found.length ? found[found.length - 1][1] : undefined;
  }

  /** Posts a form the way a browser without script would; the raw answer (no redirects). */
  async post(pathname: string, fields: Record<string, string>, cookie?: string): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (cookie) headers.cookie = `offboard_session=${cookie}`;
    return fetch(`${this.baseURL}${pathname}`, {
      method: 'POST',
      redirect: 'manual',
      headers,
      body: new URLSearchParams(fields).toString(),
    });
  }

  async setUpFirstOwner(): Promise<void> {
    const code = this.setupCode();
    if (!code) throw new Error(`no setup link in the log:\n${this.log()}`);
    const res = await this.post('/setup', { code, ...FIRST_OWNER, again: FIRST_OWNER.password });
    const cookie = sessionCookie(res);
    if (!cookie) throw new Error(`setup failed (${res.status} ${res.headers.get('location')}):\n${this.log()}`);
    this.cookie = cookie;
    sessions.set(this.baseURL, cookie);
  }

  /** Starts (or restarts) the process on the same port and data folder. */
  async launch(): Promise<void> {
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(offboardBin, ['serve'], {
      env: {
        ...process.env,
        OFFBOARD_ADDR: `127.0.0.1:${this.port}`,
        OFFBOARD_DATA_DIR: this.dataDir,
        LEPTOS_SITE_ROOT: siteRoot,
        OFFBOARD_LOG_FORMAT: 'json',
        RUST_LOG: 'info',
        // The fault and SCIM servers speak plain http on loopback, refused by default.
        OFFBOARD_ALLOW_HTTP_LOOPBACK_SITES: 'true',
        ...this.extraEnv,
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    await waitFor(`${this.baseURL}/healthz`, this.child);
  }

  /** Stops the process by PID: SIGTERM (graceful) or SIGKILL (a crash). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }
}
