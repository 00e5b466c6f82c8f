import { Leadership } from '../../domain/shared/leadership.port.js';

/** A server that shares its state with no other leads every duty. */
export class SingleServerLeadership extends Leadership {
  async lead(): Promise<boolean> {
    return true;
  }
}
