// A real mail server for a spec: server/tests/support/smtp_sink.py (PyPI aiosmtpd, installed
// by `make deps-test`) on a free loopback port, keeping each message as JSON in a folder of
// its own; stopped by PID when the spec ends.
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, repoRoot } from './servers';

/** A message as the mail server kept it (parts decoded). */
export interface Mail {
  to: string[];
  from: string;
  subject: string;
  text: string;
  html: string;
}

const python =
  process.env.SMTP_SINK_PYTHON ?? path.join(os.homedir(), '.cache', 'offboard', 'venv-scim', 'bin', 'python');

export class MailSink {
  private constructor(
    readonly port: number,
    private readonly folder: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(): Promise<MailSink> {
    const port = await freePort();
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-mail-'));
    const script = path.join(repoRoot, 'server', 'tests', 'support', 'smtp_sink.py');
    const child = spawn(python, [script, String(port), folder], { stdio: 'ignore' });
    const sink = new MailSink(port, folder, child);
    const deadline = Date.now() + 20_000;
    while (!(await sink.listening())) {
      if (child.exitCode !== null || Date.now() > deadline) {
        sink.stop();
        throw new Error(`the mail server did not start (${python}; run \`make deps-test\`)`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return sink;
  }

  private async listening(): Promise<boolean> {
    const net = await import('node:net');
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
  }

  /** Every message kept so far, oldest first. */
  messages(): Mail[] {
    return fs
      .readdirSync(this.folder)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((name) => JSON.parse(fs.readFileSync(path.join(this.folder, name), 'utf8')) as Mail);
  }

  /** The first message to `to` whose subject contains `subject`, once it arrived. */
  async to(to: string, subject: string, timeoutMs = 30_000): Promise<Mail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages().find((m) => m.to.includes(to) && m.subject.includes(subject));
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`no mail to ${to} about "${subject}"; got: ${JSON.stringify(this.messages().map((m) => [m.to, m.subject]))}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
