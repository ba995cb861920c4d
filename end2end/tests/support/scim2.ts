// The RFC-strict reference SCIM server, PyPI `scim2-server` (installed by `make deps` into
// ~/.cache/offboard/venv-scim; the Makefile exports SCIM2_SERVER_BIN), on a free loopback port,
// seeded through its Bulk endpoint and stopped by PID: a real SCIM server, not a fake.
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './servers';

const scim2Bin =
  process.env.SCIM2_SERVER_BIN ?? path.join(os.homedir(), '.cache', 'offboard', 'venv-scim', 'bin', 'scim2-server');

/** Whether something accepts connections on 127.0.0.1:`port` now. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class Scim2Server {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly token: string,
  ) {}

  /** Starts a server that accepts `token` as its bearer token; waits (bounded) until it listens. */
  static async start(token: string): Promise<Scim2Server> {
    if (!fs.existsSync(scim2Bin)) {
      throw new Error(`${scim2Bin} is missing: run \`make deps\` (or set SCIM2_SERVER_BIN)`);
    }
    const port = await freePort();
    const child = spawn(scim2Bin, ['--hostname', '127.0.0.1', '--port', String(port), '--bearer-token', token], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let output = '';
    child.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + 30_000;
    while (!(await listening(port))) {
      if (child.exitCode !== null) throw new Error(`scim2-server exited with ${child.exitCode}:\n${output}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`scim2-server did not listen within 30 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return new Scim2Server(child, port, token);
  }

  /** The site address the console is given. */
  get site(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The SCIM base URL (users at `/Users`). */
  get base(): string {
    return `${this.site}/v2`;
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, 'content-type': 'application/scim+json' };
  }

  /** Creates the users (SCIM User resources without `schemas`) in one Bulk request; their ids
   * in the same order. */
  async seed(users: Record<string, unknown>[]): Promise<string[]> {
    const res = await fetch(`${this.base}/Bulk`, {
      method: 'POST',
      headers: this.headers(),
      body: JSON.stringify({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
        Operations: users.map((u, i) => ({
          method: 'POST',
          path: '/Users',
          bulkId: String(i),
          data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], ...u },
        })),
      }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(`Bulk failed with ${res.status}: ${JSON.stringify(body)}`);
    const ids: string[] = [];
    for (const op of body.Operations) {
      if (op.status !== '201') throw new Error(`a seeded user was not created: ${JSON.stringify(op)}`);
      ids[Number(op.bulkId)] = op.location.split('/').pop();
    }
    return ids;
  }

  /** The ids of every user the server holds now, read from it directly. */
  async ids(): Promise<Set<string>> {
    const res = await fetch(`${this.base}/Users?count=1000`, { headers: this.headers() });
    const body = await res.json();
    return new Set((body.Resources ?? []).map((u: { id: string }) => u.id));
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}
