// Starts the real processes the end-to-end tests talk to (the release offboard binary, and
// with OFFBOARD_TEST_DATABASE=postgres a throwaway PostgreSQL cluster it keeps its records in)
// on free loopback ports, and stops them by PID (pg_ctl for PostgreSQL) when the test ends.
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
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

/** `OFFBOARD_TEST_DATABASE=postgres`: every console runs on a fresh database of a throwaway
 * PostgreSQL cluster instead of its SQLite file, as the Rust suites do
 * (server/tests/support/console_process.rs). */
export const onPostgres = process.env.OFFBOARD_TEST_DATABASE === 'postgres';

/** Where PostgreSQL's programs are looked for, first found wins; `OFFBOARD_PG_BIN` overrides. */
const PG_BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin'];
/** The cluster's superuser (trust authentication, loopback only). */
const PG_USER = 'offboard';

/**
 * A real PostgreSQL server (Debian's package, installed by `make deps`) initialised in a
 * temporary folder, listening on a free 127.0.0.1 port; one per Playwright worker, started on
 * first use and stopped with `pg_ctl stop` when the worker exits. PostgreSQL refuses to run as
 * root: as root, its programs run as the `postgres` user the Debian package creates.
 */
class PgCluster {
  private next = 1;
  private stopped = false;
  private constructor(
    readonly bin: string,
    readonly dir: string,
    readonly port: number,
    readonly user: { uid: number; gid: number } | undefined,
  ) {}

  private static shared: Promise<PgCluster> | undefined;

  /** The worker's cluster, started on first use. */
  static get(): Promise<PgCluster> {
    PgCluster.shared ??= PgCluster.start();
    return PgCluster.shared;
  }

  private static async start(): Promise<PgCluster> {
    const bin = [process.env.OFFBOARD_PG_BIN, ...PG_BIN_DIRS]
      .filter((d): d is string => !!d)
      .find((d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl')));
    if (!bin) {
      throw new Error(
        `OFFBOARD_TEST_DATABASE=postgres needs PostgreSQL's programs (initdb, pg_ctl): looked in OFFBOARD_PG_BIN and ${PG_BIN_DIRS.join(', ')}. Install them with \`make deps\`.`,
      );
    }
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    const user = process.getuid?.() === 0 ? { uid: id('-u'), gid: id('-g') } : undefined;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-pg-'));
    if (user) fs.chownSync(dir, user.uid, user.gid);
    const cluster = new PgCluster(bin, dir, await freePort(), user);
    cluster.run('initdb', ['--pgdata', cluster.data, '--username', PG_USER, '--auth', 'trust', '--encoding', 'UTF8', '--no-sync', '--no-instructions']);
    // Stopped however the worker ends normally; a test cluster: nothing must survive a power cut.
    process.once('exit', () => cluster.stop());
    cluster.run('pg_ctl', [
      'start', '--pgdata', cluster.data, '--log', path.join(dir, 'postgres.log'),
      // -w: returns once the server accepts connections, or fails after -t seconds.
      '-w', '-t', '60',
      '-o', `-p ${cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
    ]);
    return cluster;
  }

  get data(): string {
    return path.join(this.dir, 'data');
  }

  /** Runs one of PostgreSQL's programs (as `postgres` when we are root), synchronously. */
  private run(program: string, args: string[]): string {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8' };
    delete env.PGDATA;
    try {
      return execFileSync(path.join(this.bin, program), args, {
        cwd: this.dir,
        env,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(this.user ?? {}),
      });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      const log = path.join(this.dir, 'postgres.log');
      throw new Error(`${program} failed: ${err.stderr ?? err.message}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
    }
  }

  /** Creates a new empty database for one console; its URL. */
  freshDatabase(): string {
    const name = `e2e_${process.pid}_${this.next++}`;
    this.run('createdb', ['-h', '127.0.0.1', '-p', String(this.port), '-U', PG_USER, name]);
    return `postgres://${PG_USER}@127.0.0.1:${this.port}/${name}`;
  }

  /** A fast shutdown (sessions ended) through pg_ctl, which signals the server's PID; removes
   * the folder. Stopping twice is harmless. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.run('pg_ctl', ['stop', '--pgdata', this.data, '-m', 'fast', '-w', '-t', '30']);
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
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
    this.databaseUrl = extraEnv.DATABASE_URL;
  }

  get baseURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The PostgreSQL database this console keeps its records in (`OFFBOARD_TEST_DATABASE=postgres`);
   * a restart finds the same one. Undefined: its SQLite file in the data folder. */
  databaseUrl: string | undefined;

  /** The first owner's session cookie once set up (see `setUpFirstOwner`). */
  cookie = '';

  get cookieHeader(): string {
    return `offboard_session=${this.cookie}`;
  }

  /**
   * Starts a console (on `port`, for settings that must name it, like OFFBOARD_PUBLIC_URL;
   * else a free one); unless `setUp` is false, creates the first owner from the setup link
   * in its log and keeps their session (used by `open()` for every page).
   */
  static async start(extraEnv: Record<string, string> = {}, setUp = true, port?: number): Promise<Console> {
    if (!fs.existsSync(offboardBin)) {
      throw new Error(`${offboardBin} is missing: run \`make build\` first`);
    }
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-'));
    const c = new Console(port ?? (await freePort()), dataDir, extraEnv);
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
    if (onPostgres && !this.databaseUrl) this.databaseUrl = (await PgCluster.get()).freshDatabase();
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.DATABASE_URL;
    if (this.databaseUrl) env.DATABASE_URL = this.databaseUrl;
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(offboardBin, ['serve'], {
      env: {
        ...env,
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
    // The run is on the database it says it is on, or it proves nothing about that database.
    const health = await (await fetch(`${this.baseURL}/healthz`)).json();
    const kind = this.databaseUrl ? 'PostgreSQL' : 'SQLite';
    if (health?.database?.kind !== kind) {
      throw new Error(`the console should run on ${kind}; /healthz says ${JSON.stringify(health?.database)}`);
    }
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
