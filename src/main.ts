import { InvalidConfigurationError, loadAppConfig } from './infra/config/app-config.js';
import { startServer } from './app.js';

try {
  const server = await startServer(loadAppConfig());
  // A repository that cannot be read at all leaves the server live and not ready, saying why in the log.
  server.modelsLoaded.catch((error: Error) => process.stderr.write(`the model repository could not be loaded: ${error.message}\n`));
} catch (error) {
  if (error instanceof InvalidConfigurationError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
