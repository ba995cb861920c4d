// Shared steps of the console's end-to-end tests: the fault server process, and the admin's
// actions on the pages, found by role and accessible name as a screen reader would.
import { expect, Locator, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { offboardBin, sessions } from './servers';

export const TOKEN = 'e2e-token-0123456789abcd';
const faultBin =
  process.env.FAULT_SERVER_BIN ?? path.join(path.dirname(offboardBin), 'stack-fault-server');

/** The project's Stack-shaped SCIM server (a test double) on a free port, stopped by PID. */
export class FaultServer {
  private constructor(
    readonly child: ChildProcess,
    readonly base: string,
  ) {}

  static async start(args: string[]): Promise<FaultServer> {
    if (!fs.existsSync(faultBin)) throw new Error(`${faultBin} is missing: run \`make build\` first`);
    const child = spawn(faultBin, ['--port', '0', '--token', TOKEN, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: child.stdout! });
    const base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fault server did not start')), 15_000);
      lines.once('line', (line) => {
        clearTimeout(timer);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        m ? resolve(m[1]) : reject(new Error(`unexpected first line: ${line}`));
      });
      child.once('exit', (code) => reject(new Error(`fault server exited with ${code}`)));
    });
    return new FaultServer(child, base);
  }

  async state(): Promise<{
    deleted: string[];
    inactive: string[];
    delete_requests_by_account: Record<string, number>;
    /** Authorised SCIM requests received, by method. */
    requests: Record<string, number>;
    replies_by_status: Record<string, number>;
    /** DELETEs the site has received and not yet answered. */
    deletes_in_flight: number;
  }> {
    const res = await fetch(`${this.base}/_control/state`);
    return res.json();
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/**
 * Gives the page's browser the first owner's session for the console at `baseURL`, unless
 * it has a session there already (a test of several people signs each browser in itself).
 */
export async function signedIn(page: Page, baseURL: string): Promise<void> {
  const owner = sessions.get(baseURL);
  const cookies = await page.context().cookies(baseURL);
  if (owner && !cookies.some((c) => c.name === 'offboard_session')) {
    await page.context().addCookies([{ name: 'offboard_session', value: owner, url: baseURL }]);
  }
}

/** Opens a page of the console and waits until it is ready (hydrated, or a static page). */
export async function open(page: Page, baseURL: string, url: string): Promise<void> {
  await signedIn(page, baseURL);
  await page.goto(`${baseURL}${url}`);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', LIVE_OR_STATIC);
}

/** `data-hydrated` of a page ready to use: "true" once the WASM has hydrated one of the app's
 * screens; "static" on the people screens (sign-in, account, team…), which load no script. */
export const LIVE_OR_STATIC = /^(true|static)$/;

/** The Connect screen's verdict when the check passed: the status that says "Connected." (a
 * failed check is an alert instead). */
export const connected = (page: Page) => page.getByRole('status').filter({ hasText: /^Connected\./ });

/** The run's state line: the status that starts with one of a run's states. */
export const runState = (page: Page) =>
  page.getByRole('status').filter({ hasText: /^(Waiting to start|Running|Paused|Cancelling|Finished|Stopped|Failed)/ });

/** How many users are picked on the Choose screen: the status saying "N selected …". */
export const pickedCount = (page: Page) => page.getByRole('status').filter({ hasText: /\d selected/ });

/** The run page's table of the newest results (named by its caption). */
export const liveRows = (page: Page) => page.getByRole('table', { name: 'Latest results' });

/** A table's rows without its header row. */
export const bodyRows = (table: Locator) =>
  table.getByRole('row').filter({ hasNot: table.page().getByRole('columnheader') });

const PHRASE_INTRO = 'To go ahead, type this phrase exactly:';
/** The phrase the preview asks for, read from the sentence that shows it. */
export async function phraseOf(page: Page): Promise<string> {
  const line = await page.getByText(PHRASE_INTRO).textContent();
  return line!.slice(line!.indexOf(PHRASE_INTRO) + PHRASE_INTRO.length).trim();
}

/** Fills the Connect screen for a SCIM server (the fault server, or the real scim2-server) at
 * site address `site.base`, SCIM base URL `site.base/v2`, and saves. */
export async function connect(page: Page, baseURL: string, site: { base: string }, token: string) {
  await open(page, baseURL, '/connect');
  await page.getByLabel('Site address').fill(site.base);
  // The Advanced section opens by itself once a SCIM base URL is saved.
  if (!(await page.getByLabel('SCIM base URL').isVisible())) await page.getByText('Advanced').click();
  await page.getByLabel('SCIM base URL').fill(`${site.base}/v2`);
  await page.getByLabel('SCIM token').fill(token);
  await page.getByLabel('Protected email').fill('operator@example.com');
  await page.getByRole('button', { name: 'Save and check' }).click();
}

/** Types the phrase the page shows and starts the run; returns the job id. On the way, a wrong
 * count and a lower-case phrase are each refused with a polite live hint saying what differs,
 * and Enter on them starts nothing. */
export async function confirmRun(page: Page, buttonName: string | RegExp): Promise<string> {
  const phrase = await phraseOf(page);
  const run = page.getByRole('button', { name: buttonName });
  const box = page.getByLabel('Type the phrase to confirm');
  // The hint is the box's description, in a live region (an attribute no one sees, hence the
  // test id: it is checked only for being polite and live).
  await expect(page.getByTestId('phrase-hint')).toHaveAttribute('aria-live', 'polite');
  await expect(run).toBeDisabled();
  await box.fill(phrase.replace(/\d+/, '999'));
  await expect(run).toBeDisabled();
  const count = /\d+/.exec(phrase)![0];
  await expect(box).toHaveAccessibleDescription(`The count is ${count}, not 999. Type ${phrase}.`);
  await box.fill(phrase.toLowerCase());
  await expect(box).toHaveAccessibleDescription(`Type the words in capitals: ${phrase}.`);
  await box.press('Enter');
  await expect(run).toBeDisabled();
  expect(page.url()).toContain('/preview?id=');
  await box.fill(phrase);
  await expect(box).toHaveAccessibleDescription('');
  await expect(run).toBeEnabled();
  await run.click();
  await page.waitForURL(/\/run\?id=/);
  return new URL(page.url()).searchParams.get('id')!;
}

/** Where the screenshots of every screen go (gitignored): end2end/screenshots/NAME-WIDTH.png. */
export const screenshotDir = path.join(__dirname, '..', '..', 'screenshots');

/** At a laptop's 1280 px and a phone's 390 px: saves a screenshot, checks the page does not
 * scroll sideways, and runs axe-core (WCAG 2.1 A/AA, colour contrast included): no serious or
 * critical violation. Leaves the page at 1280 px. */
export async function checkScreen(page: Page, name: string): Promise<void> {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 800 });
    // Let the layout settle at the new width before measuring it.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
    const sideways = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(sideways, `${name} at ${width}px scrolls sideways by ${sideways}px`).toBeLessThanOrEqual(0);
    fs.mkdirSync(screenshotDir, { recursive: true });
    await page.screenshot({ path: path.join(screenshotDir, `${name}-${width}.png`), fullPage: true });
    const audit = await new AxeBuilder({ page })
      .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
      .analyze();
    const serious = audit.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(' | ')}`);
    expect(serious, `axe-core on ${name} at ${width}px`).toEqual([]);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Saves a screenshot of the current screen with the test's artifacts. */
export async function screenshot(page: Page, dir: string, name: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

/** Makes a preview of `csv` as whoever `page` is signed in as and asks a second operator to
 * approve it; the preview's path and query. */
export async function askForApproval(page: Page, baseURL: string, csv: string): Promise<string> {
  await open(page, baseURL, '/choose');
  await page.getByLabel(/File with emails or account IDs/).setInputFiles({
    name: 'leavers.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(csv),
  });
  await page.getByRole('button', { name: 'Preview these users' }).click();
  await page.waitForURL(/\/preview\?id=/);
  await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
  await page.getByLabel('Type the phrase to confirm').fill(await phraseOf(page));
  await page.getByRole('button', { name: 'Ask a second operator to approve' }).click();
  await expect(page.getByRole('region', { name: 'Awaiting approval' }).getByRole('status')).toContainText(
    'Waiting for a second operator',
  );
  return new URL(page.url()).pathname + new URL(page.url()).search;
}
