// Pause, resume and cancel a run from the Run screen, and a user who changed between the
// preview and the run is reported, not deleted. SCIM side: the project's fault server (a test
// double, slowed down so a run lasts long enough to steer); console: the real release binary.
import { test, expect } from '@playwright/test';
import { Console } from './support/servers';
import { FaultServer, TOKEN, connect, confirmRun, open, connected, liveRows, runState } from './support/flow';

let server: Console;

test.beforeEach(async () => {
  server = await Console.start();
});

test.afterEach(async () => {
  await server?.stop();
});

/** Connects to the fault server and previews all of its deactivated users. */
async function previewDeactivated(page: import('@playwright/test').Page, fault: FaultServer) {
  await connect(page, server.baseURL, fault, TOKEN);
  await expect(connected(page)).toBeVisible();
  await open(page, server.baseURL, '/choose');
  await page.getByRole('button', { name: 'Show deactivated users' }).click();
  await page.getByRole('button', { name: 'Select all' }).click();
  await page.getByRole('button', { name: 'Preview selected' }).click();
  await page.waitForURL(/\/preview\?id=/);
}

test('pause holds the run and resume finishes it', async ({ page }) => {
  // 80 users, every 2nd deactivated: 40, among them 1042, a community creator Stack refuses
  // to delete; 500 ms a request so the run (about 2.5 s at 8 in flight) can be steered even
  // when the machine is slow to click.
  const fault = await FaultServer.start(['--users', '80', '--deactivated-every', '2', '--latency-ms', '500']);
  try {
    await previewDeactivated(page, fault);
    await confirmRun(page, 'Delete 40 users');

    await page.getByRole('button', { name: 'Pause' }).click();
    await expect(runState(page)).toContainText('Paused');
    // Requests already in flight land (the site says when none is left); after that nothing
    // moves while paused.
    await expect.poll(async () => (await fault.state()).deletes_in_flight, { timeout: 20_000 }).toBe(0);
    const before = await fault.state();
    const held = before.deleted.length;
    // Not a synchronisation (that is the poll above): a window in which a runner that ignored
    // the pause would start another DELETE (one every few ms at 8 in flight). Counting the
    // DELETEs asked, not only those done, catches one still in flight at the end.
    await page.waitForTimeout(1_500);
    const after = await fault.state();
    expect(after.requests.DELETE).toBe(before.requests.DELETE);
    expect(after.deleted.length).toBe(held);
    expect(held).toBeLessThan(40);

    await page.getByRole('button', { name: 'Resume' }).click();
    await expect(runState(page)).toContainText('Finished', { timeout: 60_000 });
    const deleted = (await fault.state()).deleted;
    expect(deleted.length).toBe(39);
    expect(deleted).not.toContain('1042');
  } finally {
    fault.stop();
  }
});

test('cancel stops a run; the users not reached are reported as not attempted', async ({ page }) => {
  const fault = await FaultServer.start(['--users', '80', '--deactivated-every', '2', '--latency-ms', '250']);
  try {
    await previewDeactivated(page, fault);
    await confirmRun(page, 'Delete 40 users');
    await expect.poll(async () => (await fault.state()).deleted.length, { timeout: 20_000 }).toBeGreaterThan(2);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect(runState(page)).toContainText('Stopped', { timeout: 30_000 });
    const deleted = (await fault.state()).deleted.length;
    expect(deleted).toBeLessThan(40);
    await expect(page.getByRole('list', { name: 'Results so far' })).toContainText('not attempted');
  } finally {
    fault.stop();
  }
});

test('a user who became an admin after the preview is reported, not deleted', async ({ page }) => {
  const fault = await FaultServer.start(['--users', '10', '--promotion-allowed']);
  try {
    await connect(page, server.baseURL, fault, TOKEN);
    await expect(connected(page)).toBeVisible();
    await open(page, server.baseURL, '/choose');
    await page.getByRole('textbox', { name: 'or paste a list' }).fill('user2@example.com\nuser3@example.com');
    await page.getByRole('button', { name: 'Preview these users' }).click();
    await page.waitForURL(/\/preview\?id=/);

    // Meanwhile someone makes user 3 an Admin on the site.
    const res = await fetch(`${fault.base}/v2/Users/1003`, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/scim+json' },
      body: JSON.stringify({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'replace', path: 'userType', value: 'Admin' }],
      }),
    });
    expect(res.status).toBe(200);

    await confirmRun(page, 'Delete 2 users');
    await expect(runState(page)).toContainText('Finished', { timeout: 30_000 });
    await expect(liveRows(page)).toContainText('changed since preview');
    const state = await fault.state();
    expect(state.deleted).toEqual(['1002']);
    expect(state.delete_requests_by_account['1003']).toBeUndefined();
  } finally {
    fault.stop();
  }
});
