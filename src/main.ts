import { InvalidConfigurationError, loadAppConfig } from './infra/config/app-config.js';
import { startServer } from './app.js';

try {
  await startServer(loadAppConfig());
} catch (error) {
  if (error instanceof InvalidConfigurationError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
