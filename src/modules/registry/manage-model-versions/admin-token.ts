import { Injectable, Logger } from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AppConfig } from '../../../infra/config/app-config.js';

const ADMIN_TOKEN_FILE = 'admin-token';

/**
 * The bearer token of the admin API: ADMIN_TOKEN, or else one the server generates and writes to
 * STATE_DIR/admin-token, readable only by its user (as TorchServe's key file since ShellTorch).
 * The file's path is logged, never the token. A token file left by an earlier start is reused, so
 * operators' scripts keep working across restarts.
 */
@Injectable()
export class AdminToken {
  private readonly logger = new Logger(AdminToken.name);
  private digest?: Buffer;

  constructor(private readonly config: AppConfig) {}

  async init(): Promise<void> {
    // ADMIN_AUTH=client-cert: the admin API takes no token, so none is generated (accepts() refuses all).
    if (this.config.ADMIN_AUTH === 'client-cert') return;
    const token = this.config.ADMIN_TOKEN ?? (await this.tokenFromFile());
    this.digest = sha256(token);
  }

  /** Constant-time comparison (of digests, so the lengths match). */
  accepts(presented: string): boolean {
    if (!this.digest) return false;
    return timingSafeEqual(sha256(presented), this.digest);
  }

  private async tokenFromFile(): Promise<string> {
    const dir = resolve(this.config.STATE_DIR);
    const file = join(dir, ADMIN_TOKEN_FILE);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const existing = await readFile(file, 'utf8').then((text) => text.trim(), () => '');
    if (existing.length >= 32) {
      await chmod(file, 0o600);
      this.logger.log(`admin API token: reusing the one in ${file}`);
      return existing;
    }
    const token = randomBytes(32).toString('base64url');
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    this.logger.log(`admin API token generated into ${file} (readable only by this user); set ADMIN_TOKEN to choose one`);
    return token;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
