import { resolve } from 'node:path';
import { DEVICE_CSV_COLUMNS, deviceCsvHeader, deviceCsvLine } from '../../store/device-csv.ts';
import { type DataOptions, type DeviceSubcommand, dataOption, withRegistry } from './options.ts';
import { writeAtomically } from './output.ts';

/** `mmgw device export`: every handset as CSV, to a file (atomically) or to stdout in 64 KiB chunks. */

export const addExportCommand: DeviceSubcommand = (device, { wrap, io }) => {
  device
    .command('export')
    .description(`write every handset as CSV (${DEVICE_CSV_COLUMNS.join(',')}); no secrets`)
    .option('--out <file>', 'write here (atomically) instead of stdout')
    .addOption(dataOption())
    .action(
      wrap(async (o: DataOptions & { out?: string }) => {
        await withRegistry(
          o,
          async (r) => {
            function* lines(): Generator<string> {
              yield deviceCsvHeader();
              for (const d of r.iterateDevices()) yield deviceCsvLine(d);
            }
            if (o.out) writeAtomically(resolve(o.out), lines());
            else {
              let chunk = '';
              for (const line of lines()) {
                chunk += line;
                if (chunk.length > 64 * 1024) {
                  io.out(chunk);
                  chunk = '';
                }
              }
              io.out(chunk);
            }
          },
          'read',
        );
        return 0;
      }),
    );
};
