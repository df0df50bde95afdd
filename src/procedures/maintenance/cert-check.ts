import { defineProcedure, stepFor } from '../../core/procedure.js';
import { certHosts, certProblems, checkHosts, extraCas, renderCerts, type CertParams } from './certs.js';

const step = stepFor<CertParams>();

const certs = step({
  id: 'certs',
  title: 'Read the served certificates',
  why: 'What users see is the certificate the server presents (with SNI), not the file on disk.',
  risk: 'read',
  equivalent: (p, env) => {
    const hosts = p.hosts?.length ? p.hosts : (env.config.certs?.hosts ?? ['example.com']);
    return hosts
      .map(
        (h) =>
          `echo | openssl s_client -connect ${h.includes(':') ? h : `${h}:443`} -servername ${h.replace(/:\d+$/, '')} 2>/dev/null | openssl x509 -noout -enddate -subject -issuer -ext subjectAltName`,
      )
      .join('; ');
  },
  run: (ctx) => checkHosts(ctx),
});

export default defineProcedure<CertParams>({
  name: 'cert check',
  summary: 'Expiry, names and trust of the certificates served by hosts (native TLS with SNI); exit 4 when any is below --min-days',
  seedFixes: [
    "`openssl s_client -connect` sends no SNI unless told (-servername), so it can show the default certificate instead of the site's; this always sends SNI for names.",
    'The seed prints dates for a human to read; this computes days left, exits 4 below --min-days naming the hosts (for cron and monitoring), and reports trust and name match separately from expiry.',
    'One unreachable host does not stop the others: it is an error on its own line.',
  ],
  // Hosts named on the command line need no config (like `openssl s_client`); the configured list does.
  worksWithoutConfig: (p) => Boolean(p.hosts?.length),
  params: [
    { name: 'hosts', argument: '[hosts...]', description: "host[:port] to check (default: the environment's certs.hosts)", type: 'string' },
    {
      name: 'minDays',
      flag: '--min-days <n>',
      description: 'fail (exit 4) when fewer days are left (default: certs.minDays or 14)',
      type: 'int',
      min: 0,
      max: 3650,
    },
    { name: 'ca', flag: '--ca <file>', description: 'an extra CA bundle (PEM) to trust besides the system roots', type: 'string' },
  ],
  examples: [[], ['example.com', 'api.example.com:8443', '--min-days', '30']],
  requires: [],
  validate(p, env) {
    certHosts(p, env);
    extraCas(p, env);
  },
  steps: [certs],
  check: (run) => certProblems(run.find(certs)),
  render: (run) => renderCerts(run.find(certs)),
});
