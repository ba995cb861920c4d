// A console's second person: an invitation link made by an owner, and a browser of its own.
import { expect, Browser, BrowserContext } from '@playwright/test';
import { Console, sessionCookie } from './servers';

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

/** A new member of the first owner's team with `role`, joined through an invitation as a local
 * account: their session cookie. */
export async function joined(
  server: Console,
  role: string,
  person: { name: string; email: string; password: string },
): Promise<string> {
  const link = await invitation(server, server.cookie, role, person.email);
  const answer = await server.post('/join', {
    code: new URL(link).searchParams.get('code')!,
    ...person,
    again: person.password,
  });
  const cookie = sessionCookie(answer);
  expect(cookie, 'joined through the invitation').toBeTruthy();
  return cookie!;
}
