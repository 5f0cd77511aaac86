/**
 * Test support shared by the unit tests beside the code and the suites under
 * test/: nothing here is part of the product, and no product folder imports it.
 */
export { type EventuallyOptions, eventually } from './eventually.ts';
export { type DriverCarrier, SessionDriver, type Settlement } from './handset-session-driver.ts';
