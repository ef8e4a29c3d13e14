// The sign-in form in both shells. In the browser it asks its gateway (`GET /api/v1/info`, a
// real local HTTP server here) whether SSO is configured and offers the SSO button only then;
// in the desktop app it asks for the gateway's URL and offers SSO unless the gateway typed says,
// through the shell, that it has none.
import { afterEach, describe, expect, it } from 'vitest';
import { Login } from '../src/screens/Login';
import { button, fill, flush, mount, removeTauri, stubTauri, submit, until, withFakeGateway } from './harness';

let sso = false;
let infoAsked = 0;

withFakeGateway((req) => {
  if (req.method === 'GET' && req.url === '/api/v1/info') {
    infoAsked++;
    return { status: 200, body: { postgres_address: '127.0.0.1:7432', sso, version: '0.1.0' } };
  }
});

afterEach(() => {
  removeTauri();
  document.body.innerHTML = '';
  infoAsked = 0;
});

const labels = () => [...document.querySelectorAll('label')].map((l) => l.textContent?.trim());
const buttons = () => [...document.querySelectorAll('button')].map((b) => b.textContent);

describe('login form', () => {
  it('offers SSO in the browser when the gateway has it', async () => {
    sso = true;
    await mount(<Login onSignedIn={() => {}} />);
    expect(labels()).toEqual(['Username', 'Password']);
    await until('the SSO button', () => button('Sign in with SSO') !== undefined);
    expect(buttons()).toEqual(['Sign in', 'Sign in with SSO']);
  });

  it('hides SSO in the browser when the gateway has no [oidc]', async () => {
    sso = false;
    await mount(<Login onSignedIn={() => {}} />);
    await until('the gateway to be asked', () => infoAsked === 1);
    await flush(20);
    expect(buttons()).toEqual(['Sign in']);
    await submit();
    expect(document.querySelector('[role="alert"]')?.textContent).toBe('Enter your user name and password.');
  });

  it('asks for the gateway URL in the desktop app, and offers SSO there', async () => {
    stubTauri(async () => null);
    await mount(<Login onSignedIn={() => {}} expired />);
    expect(labels()).toEqual(['Gateway URL', 'Username', 'Password']);
    expect(buttons()).toEqual(['Sign in', 'Sign in with SSO']);
    expect(document.body.textContent).toContain('Your session has expired');
    expect(infoAsked).toBe(0);
  });

  it('hides SSO in the desktop app once the gateway typed says it has none', async () => {
    const asked: unknown[] = [];
    stubTauri(async (cmd, args) => {
      if (cmd !== 'gateway_has_sso') return null;
      asked.push(args);
      return (args as { gateway: string }).gateway.includes('sso');
    });
    await mount(<Login onSignedIn={() => {}} />);
    await fill('Gateway URL', 'https://plain.example.com');
    await until('SSO hidden', () => button('Sign in with SSO') === undefined);
    expect(asked).toContainEqual({ gateway: 'https://plain.example.com' });
    await fill('Gateway URL', 'https://sso.example.com');
    await until('SSO offered', () => button('Sign in with SSO') !== undefined);
    expect(infoAsked).toBe(0);
  });
});
