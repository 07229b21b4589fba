/** Runs once before any test file: the suite stops at once, naming it, when a tool it runs is missing. */
import { missingMessage, missingTools } from './helpers/tools.js';

export default function setup(): void {
  const missing = missingTools();
  if (missing.length > 0) throw new Error(missingMessage(missing));
}
