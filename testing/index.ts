/**
 * Test support shared by the unit tests beside the code and the suites under
 * test/: nothing here is part of the product, and no product folder imports it
 * (test/static/imports.test.ts checks).
 */
// The CLI's unit tests: captured output, a temporary data directory.
export { captureIo, runCliPiece, tempDir } from './cli.ts';
export { type EventuallyOptions, eventually } from './eventually.ts';
export { type DriverCarrier, SessionDriver, type Settlement } from './handset-session-driver.ts';
// Sample frames of every kind (codec and spec tests).
export * from './frames.ts';
// Images made with sharp (transcoder tests and benchmark): nothing binary is checked in.
export * from './images.ts';
export { methodInputs } from './method-inputs.ts';
export { processAlive } from './processes.ts';
// The registry's import and crash tests: device files, a sealer, a child process killed on cue.
export { fileImei, writeDeviceCsvFile } from './store/device-csv-file.ts';
export { runAndKill } from './store/spawn.ts';
export { testSealer } from './store/test-sealer.ts';
// TLS tests: a private CA and loopback certificates made with the openssl command.
export { type CertFiles, makeTestCa, type TestCa } from './test-ca.ts';
