import { chooseBackend, ModelBackends, type BackendChoice, type ModelBackend } from '../../domain/registry/model-backend.js';

/** The backends registered in this process (ModelBackendsModule lists them), chosen among by a model's configuration. */
export class ModelBackendRegistry extends ModelBackends {
  constructor(private readonly backends: readonly ModelBackend[]) {
    super();
    const names = backends.map((backend) => backend.name);
    const duplicate = names.find((name, index) => names.indexOf(name) !== index);
    if (duplicate !== undefined) throw new Error(`model backend '${duplicate}' is registered twice`);
  }

  forConfig(choice: BackendChoice): ModelBackend {
    return chooseBackend(this.backends, choice);
  }
}
