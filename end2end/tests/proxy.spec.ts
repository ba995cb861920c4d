// Offboard as a hosted console runs it: nginx (Debian's package, run unprivileged from a temp
// folder) in front of two replicas of the release binary on one PostgreSQL database, HTTPS with
// a certificate made here (openssl), the nginx recipe `deploy/nginx/offboard.conf` exactly as
// written (only its ${OFFBOARD_…} names filled in). In Chromium over HTTPS the owner signs in,
// previews, runs, and watches the run live while the replica driving it is told to stop
// (SIGTERM): the page keeps updating (its stream reconnects through nginx to the other
// replica, which takes the run over) and the run is exact. The SCIM side is the project's
// Stack-shaped fault server (a test double), slowed so the run lasts long enough.
import { test, expect } from '@playwright/test';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Console, FIRST_OWNER, freePort, repoRoot } from './support/servers';
import { FaultServer, TOKEN, connect, confirmRun } from './support/flow';

const PG_BIN = process.env.OFFBOARD_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
/** Both replicas must decrypt the saved token: one fixed key (base64 of 32 bytes). */
const SECRET_KEY = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
/** nginx connects to the replicas from this loopback address, the only one they trust for
 * X-Forwarded-For; the browser (and anyone else here) comes from 127.0.0.1. */
const PROXY_ADDRESS = '127.0.0.2';

/** uid/gid of an unprivileged account when the tests run as root (PostgreSQL refuses root). */
function unprivileged(name: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { uid, gid };
}

function chownTree(dir: string, who?: { uid: number; gid: number }): void {
  if (!who) return;
  fs.chownSync(dir, who.uid, who.gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    entry.isDirectory() ? chownTree(full, who) : fs.chownSync(full, who.uid, who.gid);
  }
}

/** A throwaway PostgreSQL cluster: initdb into a temp folder, pg_ctl start on a free port. */
class Postgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly as?: { uid: number; gid: number },
  ) {}

  static async start(): Promise<Postgres> {
    const as = unprivileged('postgres');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-pg-'));
    chownTree(dir, as);
    const port = await freePort();
    const pg = new Postgres(dir, port, as);
    pg.run('initdb', ['-D', pg.data, '-U', 'offboard', '--auth', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c synchronous_commit=off`;
    pg.run('pg_ctl', ['start', '-w', '-t', '60', '-D', pg.data, '-l', path.join(dir, 'postgres.log'), '-o', options]);
    return pg;
  }

  get data(): string {
    return path.join(this.dir, 'data');
  }

  get url(): string {
    return `postgres://offboard@127.0.0.1:${this.port}/postgres`;
  }

  private run(program: string, args: string[]): void {
    execFileSync(path.join(PG_BIN, program), args, {
      cwd: this.dir,
      uid: this.as?.uid,
      gid: this.as?.gid,
      env: { ...process.env, LC_ALL: 'C.UTF-8' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }

  /** One SQL statement behind the consoles' backs: the rows, one line each. */
  query(sql: string): string[] {
    const out = execFileSync('psql', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'offboard', '-d', 'postgres', '-Atc', sql]);
    return out.toString().split('\n').filter((l) => l !== '');
  }

  stop(): void {
    try {
      this.run('pg_ctl', ['stop', '-m', 'fast', '-w', '-D', this.data]);
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** nginx run unprivileged from its own prefix (pid file, logs, temp paths in a temp folder),
 * with the project's recipe included as written. */
class Nginx {
  private constructor(
    readonly dir: string,
    readonly child: ChildProcess,
  ) {}

  static async start(port: number, replicas: [number, number]): Promise<Nginx> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-e2e-nginx-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', key, '-out', cert,
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    const values: Record<string, string> = {
      OFFBOARD_SERVER_NAME: '127.0.0.1',
      OFFBOARD_LISTEN: `127.0.0.1:${port}`,
      OFFBOARD_TLS_CERT: cert,
      OFFBOARD_TLS_KEY: key,
      OFFBOARD_REPLICA_A: `127.0.0.1:${replicas[0]}`,
      OFFBOARD_REPLICA_B: `127.0.0.1:${replicas[1]}`,
    };
    const recipe = fs.readFileSync(path.join(repoRoot, 'deploy', 'nginx', 'offboard.conf'), 'utf8');
    const rendered = recipe.replace(/\$\{(OFFBOARD_[A-Z_]+)\}/g, (whole, name: string) => {
      if (!(name in values)) throw new Error(`the recipe names ${whole}, which the test does not fill`);
      return values[name];
    });
    fs.writeFileSync(path.join(dir, 'offboard.conf'), rendered);
    const temp = (name: string) => `${name}_temp_path ${path.join(dir, name)};`;
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      [
        'worker_processes 1;',
        `pid ${path.join(dir, 'nginx.pid')};`,
        `error_log ${path.join(dir, 'error.log')} info;`,
        'events { worker_connections 512; }',
        'http {',
        `  access_log ${path.join(dir, 'access.log')};`,
        `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
        // The test's own line: nginx's connections to the replicas come from another loopback
        // address than the browser's, so "trusted only from the proxy" can be told apart.
        `  proxy_bind ${PROXY_ADDRESS};`,
        `  include ${path.join(dir, 'offboard.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    const as = unprivileged('nobody');
    chownTree(dir, as);
    const child = spawn(NGINX_BIN, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'], {
      uid: as?.uid,
      gid: as?.gid,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const nginx = new Nginx(dir, child);
    const deadline = Date.now() + 30_000;
    while (!fs.existsSync(path.join(dir, 'nginx.pid'))) {
      if (child.exitCode !== null) throw new Error(`nginx exited:\n${nginx.log()}`);
      if (Date.now() > deadline) throw new Error(`nginx did not start:\n${nginx.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return nginx;
  }

  log(): string {
    const file = path.join(this.dir, 'error.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A sign-in straight to a replica (not through nginx), claiming another client address. */
function directSignIn(replicaPort: number, publicHost: string, forged: string): Promise<number> {
  const body = new URLSearchParams({ email: FIRST_OWNER.email, password: 'not the password', next: '/' }).toString();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: replicaPort,
        method: 'POST',
        path: '/sign-in',
        headers: {
          host: publicHost,
          origin: `https://${publicHost}`,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'x-forwarded-for': forged,
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test.use({ ignoreHTTPSErrors: true });

test('behind nginx over HTTPS, a run outlives a rolling stop of its replica and the page follows it', async ({ page }) => {
  test.setTimeout(240_000);
  const pg = await Postgres.start();
  const proxyPort = await freePort();
  const publicHost = `127.0.0.1:${proxyPort}`;
  const publicUrl = `https://${publicHost}`;
  const env = {
    DATABASE_URL: pg.url,
    OFFBOARD_SECRET_KEY: SECRET_KEY,
    OFFBOARD_PUBLIC_URL: publicUrl,
    OFFBOARD_SECURE_COOKIES: 'true',
    OFFBOARD_TRUSTED_PROXIES: `${PROXY_ADDRESS}/32`,
    // An hour: the other replica can take the run over during the test only because the
    // stopped one hands it back.
    OFFBOARD_JOB_LEASE_SECONDS: '3600',
    // Two requests at a time against the slowed site: the run lasts several seconds.
    OFFBOARD_SITE_CONCURRENCY: '2',
  };
  const replicas: Console[] = [];
  let nginx: Nginx | undefined;
  let fault: FaultServer | undefined;
  try {
    replicas.push(await Console.start(env, false));
    replicas.push(await Console.start(env, false));
    nginx = await Nginx.start(proxyPort, [replicas[0].port, replicas[1].port]);
    fault = await FaultServer.start(['--users', '120', '--latency-ms', '300']);

    // The first owner, from the setup link one replica printed, over HTTPS through nginx.
    const code = replicas.map((r) => r.setupCode()).find((c) => c)!;
    await page.goto(`${publicUrl}/setup?code=${code}`);
    await page.getByLabel('Your name').fill(FIRST_OWNER.name);
    await page.getByLabel('Your work email').fill(FIRST_OWNER.email);
    await page.getByLabel('Choose a password').fill(FIRST_OWNER.password);
    await page.getByLabel('The same password again').fill(FIRST_OWNER.password);
    await page.getByRole('button', { name: 'Create my account' }).click();
    // A new console's first owner is led to connect the site.
    await expect(page).toHaveURL(/\/connect$/);
    await expect(page.getByRole('heading', { name: 'Connect your site' })).toBeVisible();
    // Signs out and in again through the sign-in form.
    await page.goto(`${publicUrl}/account`);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await expect(page.getByTestId('problem')).toHaveText('You are signed out.');
    await page.getByLabel('Email').fill(FIRST_OWNER.email);
    await page.getByLabel('Password').fill(FIRST_OWNER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page).not.toHaveURL(/sign-in/);
    // The session cookie travels only over HTTPS.
    const session = (await page.context().cookies(publicUrl)).find((c) => c.name === 'offboard_session');
    expect(session?.secure).toBe(true);
    expect(session?.httpOnly).toBe(true);

    // X-Forwarded-For is believed from nginx only. A failed sign-in through nginx claiming
    // another address, and one straight to a replica claiming a third: both are counted
    // against the browser's real address, 127.0.0.1 (not the proxy's, not the claims).
    const viaProxy = await page.request.post(`${publicUrl}/sign-in`, {
      form: { email: FIRST_OWNER.email, password: 'not the password', next: '/' },
      headers: { 'x-forwarded-for': '203.0.113.7', origin: publicUrl },
      maxRedirects: 0,
    });
    expect(viaProxy.status()).toBe(303);
    expect(await directSignIn(replicas[1].port, publicHost, '198.51.100.8')).toBe(303);
    const subjects = pg.query("SELECT DISTINCT subject FROM sign_in_failures WHERE subject LIKE 'address:%'");
    expect(subjects).toEqual(['address:127.0.0.1']);

    // Connect, preview 60 plain users (no moderators or admins), run.
    await connect(page, publicUrl, fault, TOKEN);
    await expect(page.getByTestId('diagnosis')).toHaveAttribute('role', 'status');
    const picked = Array.from({ length: 100 }, (_, k) => k + 1)
      .filter((i) => ![7, 17].includes(i % 50) && ![42, 98, 99].includes(i % 100))
      .slice(0, 60);
    await page.goto(`${publicUrl}/choose`);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    await page.getByLabel(/File with emails or account IDs/).setInputFiles({
      name: 'leavers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(['Email', ...picked.map((i) => `user${i}@example.com`)].join('\r\n') + '\r\n'),
    });
    await page.getByRole('button', { name: 'Preview these users' }).click();
    await page.waitForURL(/\/preview\?id=/);
    const streams: string[] = [];
    page.on('request', (r) => {
      if (/\/jobs\/[^/]+\/events/.test(r.url())) streams.push(r.url());
    });
    const jobId = await confirmRun(page, `Delete ${picked.length} users`);

    // Some users done, live on the page; find the replica driving the run (its lease names
    // its process) and tell it to stop, as a rolling restart does.
    await expect.poll(async () => (await fault!.state()).deleted.length, { timeout: 60_000 }).toBeGreaterThanOrEqual(5);
    const holder = pg.query(`SELECT holder FROM job_leases WHERE job_id = '${jobId}'`)[0] ?? '';
    const driving = replicas.find((r) => holder.startsWith(`${r.child.pid}-`));
    expect(driving, `lease holder ${holder}`).toBeDefined();
    const other = replicas.find((r) => r !== driving)!;
    const atStop = (await fault.state()).deleted.length;
    expect(atStop).toBeLessThan(picked.length);
    const shownAtStop = await page.getByTestId('progress-text').textContent();
    await driving!.stop('SIGTERM');
    // It stopped by itself, cleanly (not killed after the wait), having handed the run back.
    expect(driving!.child.exitCode, driving!.log()).toBe(0);
    expect(driving!.log()).toContain('handed the running jobs back');

    // The page keeps following: its stream came back through nginx, to the other replica,
    // which finishes the run.
    await expect(page.getByTestId('run-state')).toContainText('Finished', { timeout: 120_000 });
    await expect(page.getByTestId('progress-text')).toContainText(`${picked.length} of ${picked.length} users processed`);
    expect(shownAtStop).not.toContain(`${picked.length} of ${picked.length}`);
    await expect(page.getByTestId('connection-state')).toHaveText('');
    expect(streams.length, `event streams opened: ${streams.join(', ')}`).toBeGreaterThanOrEqual(2);
    expect(other.log()).toContain('resuming job');

    // Exact: every confirmed user deleted, each DELETE sent once, nobody else touched.
    const state = await fault.state();
    const expected = picked.map((i) => String(1000 + i)).sort();
    expect([...state.deleted].sort()).toEqual(expected);
    expect(Object.keys(state.delete_requests_by_account).sort()).toEqual(expected);
    for (const [id, n] of Object.entries(state.delete_requests_by_account)) {
      expect(n, `DELETE requests for ${id}`).toBe(1);
    }
  } finally {
    await nginx?.stop();
    for (const r of replicas) await r.stop();
    fault?.stop();
    pg.stop();
    for (const r of replicas) fs.rmSync(r.dataDir, { recursive: true, force: true });
  }
});
