import type { ClientFactories } from '../../../src/clients/index.js';
import type { HttpClient } from '../../../src/clients/http.js';

/**
 * Wraps client factories so a test sees every contact with the outside world: each client created
 * (Kubernetes, AWS, PostgreSQL, Redis) and each HTTP request. A client cannot be called without being
 * created first, so an empty `contacts` means nothing was contacted at all. Factories the base does
 * not fake fail instead of reaching a real service.
 */
export function recordContacts(base: Partial<ClientFactories> = {}): { factories: ClientFactories; contacts: string[] } {
  const contacts: string[] = [];
  const missing = (what: string) => {
    throw new Error(`test contacted ${what}, which it does not fake`);
  };
  const http: HttpClient = {
    async request(url, req) {
      contacts.push(`http ${req?.method ?? 'GET'} ${url}`);
      return base.http ? base.http.request(url, req) : { status: 200, headers: {}, text: '{}' };
    },
  };
  const factories: ClientFactories = {
    async kube(target, env) {
      contacts.push('kube');
      return base.kube ? base.kube(target, env) : missing('kubernetes');
    },
    async aws(target, env) {
      contacts.push('aws');
      return base.aws ? base.aws(target, env) : missing('aws');
    },
    async postgres(url) {
      contacts.push('postgres');
      return base.postgres ? base.postgres(url) : missing('postgres');
    },
    async redis(opts) {
      contacts.push('redis');
      return base.redis ? base.redis(opts) : missing('redis');
    },
    http,
  };
  return { factories, contacts };
}
