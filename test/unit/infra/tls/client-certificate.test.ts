import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { describe, it } from 'node:test';
import { certificateNames } from '../../../../src/infra/tls/client-certificate.js';

const certificate = (subject: Record<string, string | string[]>, subjectaltname?: string) => ({ subject, subjectaltname }) as unknown as PeerCertificate;

describe('certificateNames (what ADMIN_CLIENT_NAMES is matched against)', () => {
  it('is the subject CN and every subjectAltName value, without its type prefix', () => {
    assert.deepEqual(certificateNames(certificate({ CN: 'deployer', O: 'ops' }, 'URI:spiffe://cluster.local/ns/ops/sa/deployer, DNS:deployer.ops.svc, IP Address:10.0.0.7, email:ops@example.com')), [
      'deployer',
      'spiffe://cluster.local/ns/ops/sa/deployer',
      'deployer.ops.svc',
      '10.0.0.7',
      'ops@example.com',
    ]);
  });

  it('unquotes a value Node quoted (it holds a comma), so that it is one name, not two', () => {
    assert.deepEqual(certificateNames(certificate({}, 'DNS:"a.example, b.example", DNS:c.example')), ['a.example, b.example', 'c.example']);
  });

  it('takes every CN of a subject with several, and none when there is no CN nor SAN', () => {
    assert.deepEqual(certificateNames(certificate({ CN: ['one', 'two'] })), ['one', 'two']);
    assert.deepEqual(certificateNames(certificate({ O: 'nobody' })), []);
  });
});
