import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

/** Where the server's certificate, its key and the CA of client certificates are read from (the TLS_* variables). */
export interface CertificatePaths {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

/** The files' bytes, as read. */
export interface CertificateFileContents {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

/** Contents that passed {@link checkCertificates}: usable as a secure context, with what may be logged of them. */
export interface CertificateMaterial extends CertificateFileContents {
  /** The serving certificate (the first of TLS_CERT_FILE): serial, validity, fingerprint. Never the key. */
  readonly leaf: X509Certificate;
}

/** A file that cannot be used, named by its variable; the message never quotes the file's contents. */
export class CertificateProblem {
  constructor(
    readonly variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE' | 'TLS_CA_FILE',
    readonly path: string,
    readonly problem: string,
  ) {}

  toString(): string {
    return `${this.variable}=${JSON.stringify(this.path)}: ${this.problem}`;
  }
}

/** Reads the files; an unreadable one is a problem (its error code, e.g. ENOENT or EACCES, says why). */
export async function readCertificateFiles(paths: CertificatePaths): Promise<CertificateFileContents | CertificateProblem[]> {
  // Each read settles to its contents or its problem, so problems are listed in the variables' order, not the order the reads fail in.
  const read = (variable: CertificateProblem['variable'], path: string) =>
    readFile(path).catch((error: NodeJS.ErrnoException) => new CertificateProblem(variable, path, `cannot be read (${error.code ?? error.message})`));
  const [cert, key, ca] = await Promise.all([read('TLS_CERT_FILE', paths.cert), read('TLS_KEY_FILE', paths.key), paths.ca === undefined ? undefined : read('TLS_CA_FILE', paths.ca)]);
  const problems = [cert, key, ca].filter((read): read is CertificateProblem => read instanceof CertificateProblem);
  if (problems.length > 0) return problems;
  return { cert: cert as Buffer, key: key as Buffer, ca: ca as Buffer | undefined };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Checks what was read, as a TLS server would use it: the certificate file holds PEM certificates,
 * the first (the server's own) not expired; the key is an unencrypted PEM private key of that
 * certificate; the CA file holds PEM certificates; and Node builds a secure context of them.
 * Every problem is named with its variable. OpenSSL's own messages are not passed on where they
 * could quote the input; ours never do.
 */
export function checkCertificates(paths: CertificatePaths, contents: CertificateFileContents, now: Date = new Date()): CertificateMaterial | CertificateProblem[] {
  const problems: CertificateProblem[] = [];
  const leaf = firstCertificate(contents.cert, 'TLS_CERT_FILE', paths.cert, problems);
  if (leaf && leaf.validToDate.getTime() <= now.getTime()) problems.push(new CertificateProblem('TLS_CERT_FILE', paths.cert, `the certificate (serial ${leaf.serialNumber}) expired on ${leaf.validToDate.toISOString()}`));
  let keyIsUsable = false;
  try {
    const key = createPrivateKey(contents.key);
    keyIsUsable = true;
    if (leaf && !leaf.checkPrivateKey(key)) problems.push(new CertificateProblem('TLS_KEY_FILE', paths.key, `is not the key of the certificate in TLS_CERT_FILE (serial ${leaf.serialNumber})`));
  } catch {
    problems.push(new CertificateProblem('TLS_KEY_FILE', paths.key, 'holds no unencrypted PEM private key'));
  }
  if (contents.ca !== undefined && paths.ca !== undefined) {
    const authorities = contents.ca.toString('latin1').match(PEM_CERTIFICATE) ?? [];
    if (authorities.length === 0) problems.push(new CertificateProblem('TLS_CA_FILE', paths.ca, 'holds no PEM certificate'));
    authorities.forEach((pem, index) => {
      try {
        new X509Certificate(pem);
      } catch {
        problems.push(new CertificateProblem('TLS_CA_FILE', paths.ca!, `certificate ${index + 1} is not a valid X.509 certificate`));
      }
    });
  }
  if (problems.length === 0 && leaf && keyIsUsable) {
    try {
      createSecureContext({ cert: contents.cert, key: contents.key, ca: contents.ca });
    } catch (error) {
      // Only the OpenSSL reason (e.g. "ca md too weak"): these messages name what failed, never the bytes.
      problems.push(new CertificateProblem('TLS_CERT_FILE', paths.cert, `cannot serve TLS with these files (${(error as Error).message})`));
    }
  }
  return problems.length > 0 || !leaf ? problems : { ...contents, leaf };
}

function firstCertificate(bytes: Buffer, variable: CertificateProblem['variable'], path: string, problems: CertificateProblem[]): X509Certificate | undefined {
  const first = bytes.toString('latin1').match(PEM_CERTIFICATE)?.[0];
  if (first === undefined) {
    problems.push(new CertificateProblem(variable, path, 'holds no PEM certificate'));
    return undefined;
  }
  try {
    return new X509Certificate(first);
  } catch {
    problems.push(new CertificateProblem(variable, path, 'its first certificate is not a valid X.509 certificate'));
    return undefined;
  }
}

/** Whether two readings of the files differ (the reload compares bytes: mtimes do not survive every kind of volume update). */
export function sameContents(a: CertificateFileContents, b: CertificateFileContents): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca === undefined ? b.ca === undefined : b.ca !== undefined && a.ca.equals(b.ca));
}
