// A console's second person: an invitation link made by an owner, and a browser of its own.
import { expect, Browser, BrowserContext } from '@playwright/test';
import { Console } from './servers';

/** An invitation link made by whoever `cookie` belongs to, for their current team, that only
 * `email` can accept. */
export async function invitation(server: Console, cookie: string, role: string, email: string): Promise<string> {
  const made = await server.post('/team/invitations', { role, email }, cookie);
  expect(made.status).toBe(303);
  const page = await fetch(`${server.baseURL}/api/team_page`, {
    method: 'POST',
    headers: { cookie: `offboard_session=${cookie}` },
  });
  return (await page.json()).new_link.url;
}

/** A browser of its own for someone else, signed in with `cookie`. */
export async function browserOf(browser: Browser, server: Console, cookie: string): Promise<BrowserContext> {
  const context = await browser.newContext();
  await context.addCookies([{ name: 'offboard_session', value: cookie, url: server.baseURL }]);
  return context;
}
