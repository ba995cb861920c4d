// Issue 23 items 3 and 4, driven as a person on the Run screen. SCIM side: the project's fault
// server (a FAKE Stack site: `down: true` makes it answer every request 503, as a site behind
// its proxy does when it stops answering); console: the real release binary.
// - The site stops answering mid-run: the run pauses itself and says so in words, nobody is
//   reported failed; the site comes back, Resume finishes the run exactly.
// - After a cancel, "Preview the N users not yet removed" leads to a new preview of them.
import { test, expect, Page } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, connect, confirmRun, open, connected, runState } from './support/flow';
import { checkPage } from './support/program-text';

let server: Console;

test.beforeEach(async () => {
  server = await Console.start();
});

test.afterEach(async () => {
  await server?.stop();
});

/** Connects to the fault server and previews all of its deactivated users. */
async function previewDeactivated(page: Page, fault: FaultServer) {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');
  await page.getByRole('button', { name: 'Show deactivated users' }).click();
  await page.getByRole('button', { name: 'Select all' }).click();
  await page.getByRole('button', { name: 'Preview selected' }).click();
  await page.waitForURL(/\/preview\?id=/);
}

/** Switches the fake site off (every SCIM request answered 503) or on again. */
async function siteDown(fault: FaultServer, down: boolean) {
  const res = await fetch(`${fault.base}/_control/settings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ down }),
  });
  expect(res.ok).toBe(true);
}

test('a site that stops answering pauses the run; Resume finishes it exactly', async ({ page }) => {
  test.setTimeout(180_000);
  // 80 users, every 2nd deactivated: 40, among them 1042, a community creator Stack refuses
  // to delete; 300 ms a request so the run lasts long enough to take the site down mid-run.
  const fault = await FaultServer.start(['--users', '80', '--deactivated-every', '2', '--latency-ms', '300']);
  try {
    await previewDeactivated(page, fault);
    await confirmRun(page, 'Delete 40 users');
    await expect.poll(async () => (await fault.state()).deleted.length, { timeout: 30_000 }).toBeGreaterThan(2);

    await siteDown(fault, true);
    // Each user gets its tries first (about 15 s of backing off), then the run pauses itself.
    await expect(runState(page)).toContainText(
      /^Paused: your site stopped answering at \d\d:\d\d UTC\. Resume when it is back\.$/,
      { timeout: 90_000 },
    );
    const results = page.getByRole('list', { name: 'Results so far' });
    // The community creator (refused by the site) is the only 'failed' the counts may show.
    await expect(results).not.toContainText(/failed(?!: community creator)/);
    const heldBack = (await fault.state()).deleted.length;
    expect(heldBack).toBeLessThan(39);
    await checkPage(page, 'run-site-stopped-answering');

    await siteDown(fault, false);
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(runState(page)).toContainText('Finished', { timeout: 90_000 });
    await expect(results).toContainText('39 deleted');
    await expect(results).toContainText('1 failed: community creator');
    // The community creator (refused by the site) is the only 'failed' the counts may show.
    await expect(results).not.toContainText(/failed(?!: community creator)/);
    await expect(page.getByTestId('progress-text')).toHaveText('40 of 40 users processed');
    const state = await fault.state();
    expect(state.deleted.length).toBe(39);
    expect(state.deleted).not.toContain('1042');
    // Each user deleted once: no DELETE reached an account twice.
    for (const [account, n] of Object.entries(state.delete_requests_by_account)) {
      expect(n, `DELETEs for ${account}`).toBeLessThanOrEqual(1);
    }
  } finally {
    fault.stop();
  }
});

test('after a cancel, "Preview the N users not yet removed" makes a preview of exactly them', async ({ page }) => {
  const fault = await FaultServer.start(['--users', '80', '--deactivated-every', '2', '--latency-ms', '250']);
  try {
    await previewDeactivated(page, fault);
    await confirmRun(page, 'Delete 40 users');
    await expect.poll(async () => (await fault.state()).deleted.length, { timeout: 20_000 }).toBeGreaterThan(2);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(runState(page)).toContainText('Stopped', { timeout: 30_000 });
    // What was in flight has landed; from here nothing changes on the site.
    await expect.poll(async () => (await fault.state()).deletes_in_flight, { timeout: 20_000 }).toBe(0);
    const deleted = (await fault.state()).deleted.length;
    const left = 40 - deleted;
    expect(left).toBeGreaterThan(0);

    const button = page.getByRole('button', { name: `Preview the ${left} users not yet removed` });
    await expect(button).toBeVisible();
    await checkPage(page, 'run-cancelled-not-removed');
    await button.click();
    await page.waitForURL(/\/preview\?id=/);
    await expect(page.locator('.app')).toHaveAttribute('data-hydrated', 'true');
    // Every one of them is in the new preview (1042 too: the preview cannot know Stack will
    // refuse it), and nothing was deleted by making it.
    await expect(page.getByText(`Delete ${left} users`).first()).toBeVisible();
    expect((await fault.state()).deleted.length).toBe(deleted);
  } finally {
    fault.stop();
  }
});
