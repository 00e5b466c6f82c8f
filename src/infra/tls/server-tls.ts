import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import type { Server as HttpServer } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Server as TlsServer, SecureContextOptions } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { InvalidConfigurationError, type AppConfig } from '../config/app-config.js';
import { checkCertificates, readCertificateFiles, sameContents, type CertificateFileContents, type CertificateMaterial, type CertificatePaths } from './certificate-files.js';

type Listener<T> = (update: T | null) => void;

/**
 * TLS of every port the server listens on (HTTP, gRPC, metrics), from TLS_CERT_FILE, TLS_KEY_FILE
 * and TLS_CA_FILE, checked at start; or plaintext when TLS_CERT_FILE is unset.
 *
 * Reload: the files are re-read every TLS_RELOAD_INTERVAL_MS and compared byte for byte with what
 * was read before; changed files that pass the start checks become every server's secure context
 * (`tls.Server#setSecureContext`): new connections get the new certificate, open ones keep theirs,
 * none is dropped. Polling, not fs.watch: a Kubernetes Secret or a SPIFFE/Istio agent replaces the
 * files by renaming a directory symlink, which inotify watches on the files miss, and fs.watch is
 * unreliable on network and overlay filesystems; reading three small files every few seconds costs
 * nothing. Files that change but cannot be used (a key written before its certificate, mid-rotation)
 * are logged and skipped: the last good certificate is served until the files are whole again.
 *
 * gRPC: grpc-js' own reload machinery (`experimental.createCertificateProviderServerCredentials`,
 * which calls setSecureContext on its HTTP/2 server) fed by this class as its CertificateProvider,
 * rather than grpc-js' FileWatcherCertificateProvider: that one passes on whatever it reads, and a
 * certificate and key read mid-rotation make grpc-js refuse every new connection until the next read;
 * one poller for every port also rotates HTTP and gRPC together.
 */
export class ServerTls implements OnApplicationShutdown {
  private readonly logger = new Logger('TLS');
  private readonly servers = new Set<TlsServer>();
  private readonly identityListeners = new Set<Listener<experimental.IdentityCertificateUpdate>>();
  private readonly caListeners = new Set<Listener<experimental.CaCertificateUpdate>>();
  private lastRead: CertificateFileContents | undefined;
  private lastProblem = '';
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;

  private constructor(
    private readonly config: AppConfig,
    private readonly paths: CertificatePaths | undefined,
    private material: CertificateMaterial | undefined,
  ) {
    this.lastRead = material;
  }

  /**
   * Checks the TLS_* and ADMIN_AUTH settings and reads the files. Every problem (a missing companion
   * variable, an unreadable file, a key of another certificate...) is an InvalidConfigurationError
   * naming the variable: the process exits with code 2, as for every bad variable.
   */
  static async start(config: AppConfig): Promise<ServerTls> {
    const problems = settingProblems(config);
    if (problems.length > 0) throw new InvalidConfigurationError(`invalid configuration: ${problems.join('; ')}`);
    if (config.TLS_CERT_FILE === undefined || config.TLS_KEY_FILE === undefined) return new ServerTls(config, undefined, undefined);
    const paths: CertificatePaths = { cert: config.TLS_CERT_FILE, key: config.TLS_KEY_FILE, ca: config.TLS_CA_FILE };
    const contents = await readCertificateFiles(paths);
    const checked = Array.isArray(contents) ? contents : checkCertificates(paths, contents);
    if (Array.isArray(checked)) throw new InvalidConfigurationError(`invalid configuration: ${checked.join('; ')}`);
    const tls = new ServerTls(config, paths, checked);
    tls.timer = setInterval(() => void tls.reload(), config.TLS_RELOAD_INTERVAL_MS);
    tls.timer.unref();
    return tls;
  }

  get enabled(): boolean {
    return this.material !== undefined;
  }

  /** The certificate served now (undefined without TLS). */
  get certificate(): X509Certificate | undefined {
    return this.material?.leaf;
  }

  /** `http` or `https`, for the addresses the server announces. */
  get scheme(): 'http' | 'https' {
    return this.enabled ? 'https' : 'http';
  }

  /** A line for the start-up log: what is served, never a secret. */
  describe(): string {
    if (!this.material) return 'TLS off (TLS_CERT_FILE unset): plaintext';
    const { leaf } = this.material;
    return `TLS on: certificate serial ${leaf.serialNumber} (${leaf.subject.replaceAll('\n', ', ')}), valid until ${leaf.validToDate.toISOString()}; client certificates ${this.config.TLS_CLIENT_AUTH}; files re-read every ${this.config.TLS_RELOAD_INTERVAL_MS} ms`;
  }

  /**
   * Options of an HTTPS server (node:https, Fastify's `https`): the certificate, key and CA, and
   * client certificates asked for (optional, required) and required to verify (required).
   */
  httpsOptions(): HttpsServerOptions {
    if (!this.material) throw new Error('TLS is off');
    return { ...this.secureContextOptions(this.material), requestCert: this.config.TLS_CLIENT_AUTH !== 'none', rejectUnauthorized: this.config.TLS_CLIENT_AUTH === 'required' };
  }

  /** {@link httpsOptions} with TLS on; undefined for a plaintext server. */
  httpsOptionsIfEnabled(): HttpsServerOptions | undefined {
    return this.enabled ? this.httpsOptions() : undefined;
  }

  /** Keeps an HTTPS server's certificate current until it closes (nothing to do for a plaintext one). */
  serve(server: HttpServer | TlsServer): void {
    if (!this.enabled || !('setSecureContext' in server)) return;
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** The gRPC server's credentials; undefined without TLS (plaintext). */
  grpcCredentials(): ServerCredentials | undefined {
    if (!this.enabled) return undefined;
    const provider: experimental.CertificateProvider = {
      addIdentityCertificateListener: (listener) => this.listen(this.identityListeners, listener, (m) => ({ certificate: m.cert, privateKey: m.key })),
      removeIdentityCertificateListener: (listener) => void this.identityListeners.delete(listener),
      addCaCertificateListener: (listener) => this.listen(this.caListeners, listener, (m) => (m.ca ? { caCertificate: m.ca } : null)),
      removeCaCertificateListener: (listener) => void this.caListeners.delete(listener),
    };
    // grpc-js 1.14 builds these credentials as (identity provider, CA provider | null, require a
    // client certificate) whatever its type declaration names the first two; one provider serves
    // both. Without a CA provider, no client certificate is asked for.
    return experimental.createCertificateProviderServerCredentials(provider, this.config.TLS_CLIENT_AUTH === 'none' ? null : provider, this.config.TLS_CLIENT_AUTH === 'required');
  }

  /** Reads the files once now; resolves when the reading (and any reload) is done. */
  reload(): Promise<void> {
    this.reading ??= this.readAndApply().finally(() => (this.reading = undefined));
    return this.reading;
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  private listen<T>(listeners: Set<Listener<T>>, listener: Listener<T>, updateOf: (material: CertificateMaterial) => T | null): void {
    listeners.add(listener);
    // Asynchronously, as grpc-js' own providers do: grpc-js registers its watcher after this call.
    const material = this.material!;
    process.nextTick(() => listeners.has(listener) && listener(updateOf(material)));
  }

  private async readAndApply(): Promise<void> {
    const paths = this.paths!;
    const contents = await readCertificateFiles(paths);
    if (Array.isArray(contents)) return this.skip(contents.join('; '));
    if (this.lastRead && sameContents(contents, this.lastRead)) return;
    this.lastRead = contents;
    const checked = checkCertificates(paths, contents);
    if (Array.isArray(checked)) return this.skip(checked.join('; '));
    const previous = this.material!.leaf;
    try {
      for (const server of this.servers) server.setSecureContext(this.secureContextOptions(checked));
    } catch (error) {
      return this.skip(`the secure context could not be set (${(error as Error).message})`);
    }
    this.material = checked;
    this.lastProblem = '';
    for (const listener of this.identityListeners) listener({ certificate: checked.cert, privateKey: checked.key });
    for (const listener of this.caListeners) listener(checked.ca ? { caCertificate: checked.ca } : null);
    this.logger.log(`certificate reloaded: serial ${checked.leaf.serialNumber}, valid until ${checked.leaf.validToDate.toISOString()} (was serial ${previous.serialNumber})`);
  }

  private skip(problem: string): void {
    if (problem !== this.lastProblem) this.logger.warn(`the TLS files changed but cannot be used, still serving serial ${this.material!.leaf.serialNumber}: ${problem}`);
    this.lastProblem = problem;
  }

  private secureContextOptions(material: CertificateMaterial): SecureContextOptions {
    return { cert: material.cert, key: material.key, ca: material.ca };
  }
}

/** The settings that do not go together, each naming its variable (never a secret's value). */
function settingProblems(config: AppConfig): string[] {
  const problems: string[] = [];
  const clientAuth = config.TLS_CLIENT_AUTH;
  if (config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE === undefined) problems.push('TLS_KEY_FILE: required with TLS_CERT_FILE (the private key of the certificate)');
  if (config.TLS_KEY_FILE !== undefined && config.TLS_CERT_FILE === undefined) problems.push('TLS_CERT_FILE: required with TLS_KEY_FILE (the certificate of the key)');
  if (config.TLS_CERT_FILE === undefined && (clientAuth !== 'none' || config.TLS_CA_FILE !== undefined)) {
    problems.push(`TLS_CERT_FILE: required with ${clientAuth !== 'none' ? `TLS_CLIENT_AUTH=${clientAuth}` : 'TLS_CA_FILE'} (client certificates are a part of TLS)`);
  }
  if (clientAuth !== 'none' && config.TLS_CA_FILE === undefined) problems.push(`TLS_CA_FILE: required with TLS_CLIENT_AUTH=${clientAuth} (the CA that client certificates must chain to)`);
  if (clientAuth === 'none' && config.TLS_CA_FILE !== undefined) problems.push(`TLS_CA_FILE=${JSON.stringify(config.TLS_CA_FILE)}: set, but TLS_CLIENT_AUTH=none asks no client for a certificate (set TLS_CLIENT_AUTH=optional or required)`);
  if (config.ADMIN_AUTH !== 'token' && clientAuth === 'none') problems.push(`ADMIN_AUTH=${config.ADMIN_AUTH}: needs client certificates (set TLS_CLIENT_AUTH=optional or required, with TLS_CA_FILE)`);
  if (config.ADMIN_AUTH === 'token' && config.ADMIN_CLIENT_NAMES !== undefined) problems.push('ADMIN_CLIENT_NAMES: set, but ADMIN_AUTH=token checks no client certificate (set ADMIN_AUTH=client-cert or both)');
  if (config.ADMIN_AUTH === 'client-cert' && config.ADMIN_TOKEN !== undefined) problems.push('ADMIN_TOKEN: set, but ADMIN_AUTH=client-cert does not use it (set ADMIN_AUTH=both, or unset ADMIN_TOKEN)');
  return problems;
}
