// Team webhooks (issue 20), as an owner meets them in Chromium: Olive saves a webhook address
// on the Team page, copies its signing secret (shown once), sends a test message, and reads the
// delivery log; a failing receiver shows "Will try again" with the reason. An operator does not
// see the section at all. The receiver is a real HTTP server in this test that checks each
// signature with the secret the page showed; console: the real release binary. Pages read
// clearly at 1280 and 390 px, pass axe-core and show no program text.
import { test, expect, Page } from '@playwright/test';
import * as crypto from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';
import { Console, sessionCookie } from './support/servers';
import { checkScreen, open } from './support/flow';
import { browserOf, invitation } from './support/people';
import { expectNoProgramText } from './support/program-text';

type Got = { delivery: string; event: string; body: any; signed: boolean };

/** A receiver of our own: records each request and whether its signature checks out. */
async function receiver() {
  const got: Got[] = [];
  const state = { secret: '', failNext: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const header = String(req.headers['x-offboard-signature'] ?? '');
      const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2)));
      const want = crypto.createHmac('sha256', state.secret).update(`${parts.t}.`).update(raw).digest('hex');
      got.push({
        delivery: String(req.headers['x-offboard-delivery'] ?? ''),
        event: String(req.headers['x-offboard-event'] ?? ''),
        body: JSON.parse(raw.toString() || 'null'),
        signed: parts.v1 === want,
      });
      if (state.failNext > 0) {
        state.failNext -= 1;
        res.writeHead(500).end();
      } else {
        res.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/offboard`;
  return { got, state, address, close: () => server.close() };
}

const section = (page: Page) => page.getByRole('region', { name: 'Notifications' });

test('an owner saves a webhook, keeps its secret, sends a test message and reads the log', async ({ page, browser }) => {
  test.setTimeout(120_000);
  const hook = await receiver();
  const server = await Console.start();
  try {
    await open(page, server.baseURL, '/team');
    await expect(section(page)).toContainText('No webhook yet: nothing is sent.');
    await section(page).getByLabel('Webhook address').fill(hook.address);
    await section(page).getByRole('button', { name: 'Save webhook address' }).click();
    await expect(page).toHaveURL(/\/team\?problem=done#notifications$/);
    await expect(page.getByRole('status').filter({ hasText: 'The webhook address was saved' })).toBeVisible();
    const secret = (await section(page).getByTestId('webhook-secret-value').textContent())!.trim();
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    hook.state.secret = secret;
    // The address is named without its path (Slack's and Teams' carry a secret there).
    const port = new URL(hook.address).port;
    await expect(section(page).getByTestId('webhook-state')).toContainText(`Messages go to http://127.0.0.1:${port}/…, as a signed JSON event`);
    await checkScreen(page, '70-team-webhook-saved');
    await expectNoProgramText(page, 'the Team page with a webhook');

    // Shown once: a reload no longer has it.
    await page.reload();
    await expect(section(page).getByTestId('webhook-secret')).toHaveCount(0);
    await expect(page.content()).resolves.not.toContain(secret);

    // A test message: it arrives signed, and the log says so.
    await section(page).getByRole('button', { name: 'Send a test message' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'A test message is on its way' })).toBeVisible();
    await expect.poll(() => hook.got.length, { timeout: 20_000 }).toBe(1);
    expect(hook.got[0]).toMatchObject({ event: 'test', signed: true });
    expect(hook.got[0].body.text).toContain('this webhook works');
    await expect
      .poll(async () => {
        await page.reload();
        return section(page).getByRole('table', { name: /Delivery log/ }).innerText();
      }, { timeout: 20_000 })
      .toMatch(/Test message \(Olive[^)]*\)\s+http:\/\/127\.0\.0\.1:\d+\/…\s+Delivered: after 1 try/);

    // A receiver that fails: the log says why and that it will try again.
    hook.state.failNext = 1;
    await section(page).getByRole('button', { name: 'Send a test message' }).click();
    await expect.poll(() => hook.got.length, { timeout: 20_000 }).toBe(2);
    await expect
      .poll(async () => {
        await page.reload();
        return section(page).getByRole('table', { name: /Delivery log/ }).locator('tbody tr').first().innerText();
      }, { timeout: 20_000 })
      .toMatch(/Will try again: The receiver answered 500 Internal Server Error\. \(1 try so far; next at/);
    await checkScreen(page, '71-team-webhook-log');
    await expectNoProgramText(page, 'the delivery log');

    // An operator sees no notifications section (and the forms refuse them: accounts.rs).
    const code = new URL(await invitation(server, server.cookie, 'operator', 'carol@example.com')).searchParams.get('code')!;
    const joined = await server.post('/join', {
      code,
      email: 'carol@example.com',
      name: 'Carol',
      password: 'another long password',
      again: 'another long password',
    });
    const carol = await (await browserOf(browser, server, sessionCookie(joined)!)).newPage();
    await carol.goto(`${server.baseURL}/team`);
    await expect(carol.getByRole('heading', { name: 'Default team' })).toBeVisible();
    await expect(section(carol)).toHaveCount(0);

    // Removing it: nothing more goes out.
    await section(page).getByRole('button', { name: 'Remove webhook' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'The webhook was removed' })).toBeVisible();
    await expect(section(page)).toContainText('No webhook yet: nothing is sent.');
  } finally {
    hook.close();
    await server.stop();
  }
});
