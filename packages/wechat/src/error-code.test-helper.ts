import { expect } from 'vitest';
import { WeChatError } from './errors.js';

/** Runs `fn`, asserts it throws a WeChatError, and returns the error's code. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WeChatError);
    return (err as WeChatError).code;
  }
  throw new Error('expected a WeChatError, nothing was thrown');
}
