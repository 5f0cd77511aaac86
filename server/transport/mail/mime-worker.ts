/**
 * A MIME worker thread (kit/worker-pool.ts, opened by mime-pool.ts): runs the
 * jobs of mime-jobs.ts, off the event loop that serves the devices.
 */
import { serveJobs } from '../kit/worker-pool.ts';
import { runMimeJob } from './mime-jobs.ts';

serveJobs(runMimeJob);
