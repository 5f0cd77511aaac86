/**
 * The methods a transport node answers, by name. Services (sys, mail, im)
 * each contribute MethodDefinitions; the dispatcher only looks names up here.
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import type { MethodDefinition } from './types.ts';

/** Method names are dotted lowercase words (`mail.fetch_body`), like bus subjects' tokens. */
const METHOD_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

export class MethodRegistry {
  private readonly methods = new Map<string, MethodDefinition<any>>();

  constructor(definitions: Iterable<MethodDefinition<any>> = []) {
    for (const d of definitions) this.register(d);
  }

  /** Adds a method; a second definition of the same name is a programming error. */
  register(definition: MethodDefinition<any>): this {
    if (!METHOD_NAME.test(definition.method)) {
      throw new GatewayError('config.invalid', `Bad transport method name "${definition.method}".`);
    }
    if (this.methods.has(definition.method)) {
      throw new GatewayError(
        'config.invalid',
        `Transport method "${definition.method}" is registered twice.`,
      );
    }
    this.methods.set(definition.method, definition);
    return this;
  }

  get(method: string): MethodDefinition<unknown> | undefined {
    return this.methods.get(method);
  }

  names(): string[] {
    return [...this.methods.keys()].sort();
  }
}
