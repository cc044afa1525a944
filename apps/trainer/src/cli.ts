import { Command, Option } from 'commander';
import { PRESET_NAMES } from '@matryoshka-ts/nested-unet';
import { modelInfo } from './info.js';

const program = new Command();
program.name('mdm-train').description('Train, resume and sample Matryoshka Diffusion Models.').showHelpAfterError();

program
  .command('info')
  .description('Print a model\'s parameter counts as one JSON line (per level, each excluding the levels inside it). Allocates no weights.')
  .option('--preset <name>', `a preset: ${PRESET_NAMES.join(', ')}`)
  .option('--config <file>', 'a model config (JSON) instead of a preset')
  .addOption(new Option('--conditioning <kind>', 'conditioning of a preset').choices(['text', 'labels', 'none']))
  .action((options) => {
    console.log(JSON.stringify(modelInfo(options)));
  });

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`mdm-train: ${error.message}`);
  process.exit(1);
});
