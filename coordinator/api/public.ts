import { PROTOCOL_VERSION, MIN_PROTOCOL_VERSION } from '../../protocol/index.js';
import { authenticate } from '../auth.js';
import type { Core } from '../core.js';
import type { Router } from '../router.js';
import { json } from '../router.js';

/** Routes anyone may call, and `whoami`. */
export function publicRoutes(core: Core, r: Router, serverKind: () => string): void {
  r.add('GET', '/api/v1/health', () => json(200, { ok: true, server: serverKind(), protocol: PROTOCOL_VERSION }));
  r.add('GET', '/api/v1/coordinator', () =>
    json(200, {
      publicKey: Buffer.from(core.identity.publicKey).toString('base64'),
      protocol: PROTOCOL_VERSION,
      minProtocol: MIN_PROTOCOL_VERSION,
    }),
  );
  r.add('GET', '/api/v1/whoami', ({ req }) => {
    const me = authenticate(core, req);
    return json(200, { id: me.user.id, name: me.user.name, privileges: me.user.privileges });
  });
}
