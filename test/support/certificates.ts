import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate and its key, as files and as bytes. */
export interface Identity {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** As a TLS peer sees it (`PeerCertificate.fingerprint256`). */
  readonly fingerprint256: string;
  readonly serialNumber: string;
}

export interface IssueOptions {
  /** subjectAltName entries, e.g. `URI:spiffe://test/admin`; a server certificate gets `IP:127.0.0.1,DNS:localhost`. */
  readonly altNames?: readonly string[];
  readonly server?: boolean;
}

/** A test CA (P-256, openssl's CLI) that issues server and client certificates into its own temporary directory. */
export class CertificateAuthority implements Identity {
  private serial = 0x1000;

  private constructor(
    readonly dir: string,
    private readonly self: Identity,
  ) {}

  get certFile() { return this.self.certFile; }
  get keyFile() { return this.self.keyFile; }
  get cert() { return this.self.cert; }
  get key() { return this.self.key; }
  get fingerprint256() { return this.self.fingerprint256; }
  get serialNumber() { return this.self.serialNumber; }

  static async create(name: string): Promise<CertificateAuthority> {
    const dir = await mkdtemp(join(tmpdir(), 'onnx-serving-pki-'));
    await writeFile(join(dir, 'openssl.cnf'), '[req]\ndistinguished_name = dn\n[dn]\n');
    const self = await generate(dir, 'ca', [`/CN=${name}`, ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'], []]);
    return new CertificateAuthority(dir, self);
  }

  /** A new certificate (a new key, the next serial) for `commonName`, in files named after `file`. */
  async issue(file: string, commonName: string, options: IssueOptions = {}): Promise<Identity> {
    this.serial += 1;
    const altNames = [...(options.server ? ['IP:127.0.0.1', 'DNS:localhost'] : []), ...(options.altNames ?? [])];
    const extensions = ['basicConstraints=critical,CA:FALSE', `extendedKeyUsage=${options.server ? 'serverAuth' : 'clientAuth'}`, ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : [])];
    return generate(this.dir, file, [`/CN=${commonName}`, extensions, ['-CA', this.certFile, '-CAkey', this.keyFile, '-set_serial', `0x${this.serial.toString(16)}`]]);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function generate(dir: string, file: string, [subject, extensions, signing]: [string, string[], string[]]): Promise<Identity> {
  const certFile = join(dir, `${file}.crt`);
  const keyFile = join(dir, `${file}.key`);
  await run('openssl', [
    'req', '-x509', '-config', join(dir, 'openssl.cnf'), '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-subj', subject, '-days', '2', ...extensions.flatMap((extension) => ['-addext', extension]), ...signing,
  ]);
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  const x509 = new X509Certificate(cert);
  return { certFile, keyFile, cert, key, fingerprint256: x509.fingerprint256, serialNumber: x509.serialNumber };
}
