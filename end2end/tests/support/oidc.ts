// Starts the real OpenID Connect provider of end2end/oidc/provider.mjs (the npm
// `oidc-provider`) on a free loopback port for browser tests of single sign-on, and stops it
// by PID. The same script serves server/tests/sso.rs.
//
//   const port = await freePort();                       // the console's port, known first
//   const publicUrl = `http://127.0.0.1:${port}`;
//   const idp = await OidcProvider.start({ redirectUri: `${publicUrl}/sign-in/sso/callback` });
//   const console = new Console(port, dataDir, { ...idp.consoleEnv(publicUrl) });
//   await console.launch();
//   …  await signInAtProvider(page, 'alice');             // on the provider's sign-in page
//   await idp.stop();
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from '@playwright/test';

const script = path.resolve(__dirname, '../../oidc/provider.mjs');

/** The provider's test people (the login typed in its form). */
export const people = {
  /** alice@example.com, verified, name "Alice Admin". */
  verified: 'alice',
  /** bob@example.com, email_verified false. */
  unverified: 'bob',
  /** carol@example.org, verified: another domain than example.com. */
  otherDomain: 'carol',
  /** Erin.Mixed@Example.COM, verified, no name. */
  mixedCase: 'erin',
  /** no email at all. */
  noEmail: 'dave',
  /** frank@example.com, no email_verified claim. */
  verificationUnsaid: 'frank',
  /** mallory@evil-example.com, verified: a look-alike of example.com. */
  lookAlike: 'mallory',
} as const;

export interface ProviderOptions {
  redirectUri: string;
  clientId?: string;
  clientSecret?: string;
}

/** A running provider with one confidential client. */
export class OidcProvider {
  private constructor(
    readonly child: ChildProcess,
    readonly issuer: string,
    readonly clientId: string,
    readonly clientSecret: string,
    readonly logFile: string,
  ) {}

  static async start(options: ProviderOptions, timeoutMs = 30_000): Promise<OidcProvider> {
    const clientId = options.clientId ?? 'offboard-test';
    const clientSecret = options.clientSecret ?? 'e2e-client-secret-3b9d61';
    const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'offboard-oidc-')), 'provider.log');
    const log = fs.openSync(logFile, 'a');
    // Port 0: the provider binds a free port itself and prints its URL, so no race for a port.
    const child = spawn(process.execPath, [script, '0'], {
      cwd: path.dirname(script),
      env: {
        ...process.env,
        OIDC_CLIENT_ID: clientId,
        OIDC_CLIENT_SECRET: clientSecret,
        OIDC_REDIRECT_URI: options.redirectUri,
      },
      stdio: ['ignore', 'pipe', log],
    });
    fs.closeSync(log);
    const issuer = await new Promise<string>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the OpenID provider did not start within ${timeoutMs} ms: ${fs.readFileSync(logFile, 'utf8')}`));
      }, timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        const ready = /^ready (\S+)$/m.exec(seen);
        if (ready) {
          clearTimeout(timer);
          resolve(ready[1]);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the OpenID provider exited with ${code}: ${fs.readFileSync(logFile, 'utf8')}`));
      });
    });
    return new OidcProvider(child, issuer, clientId, clientSecret, logFile);
  }

  /** The console's environment for single sign-on with this provider. */
  consoleEnv(publicUrl: string, allowedDomains: string[] = []): Record<string, string> {
    const env: Record<string, string> = {
      OFFBOARD_PUBLIC_URL: publicUrl,
      OFFBOARD_OIDC_ISSUER: this.issuer,
      OFFBOARD_OIDC_CLIENT_ID: this.clientId,
      OFFBOARD_OIDC_CLIENT_SECRET: this.clientSecret,
    };
    if (allowedDomains.length > 0) env.OFFBOARD_OIDC_ALLOWED_DOMAINS = allowedDomains.join(',');
    return env;
  }

  /** Stops the process by PID. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }
}

/** On the provider's sign-in page: sign in as `login` (any password; consent is automatic). */
export async function signInAtProvider(page: Page, login: string): Promise<void> {
  // The provider's development sign-in form names its boxes only by placeholder.
  await page.getByPlaceholder('Enter any login').fill(login);
  await page.getByPlaceholder('and password').fill('any password: test accounts');
  await page.getByRole('button', { name: 'Sign-in' }).click();
}

/** On the provider's sign-in page: cancel (the console gets `error=access_denied`). */
export async function cancelAtProvider(page: Page): Promise<void> {
  await page.getByRole('link', { name: '[ Cancel ]' }).click();
}
