import { Command, Option } from 'commander';
import { frechetCommand } from './frechet-command.js';

const program = new Command();
program.name('mdm-eval').description('Evaluate Matryoshka Diffusion Models.').showHelpAfterError();

program
  .command('frechet')
  .description(
    'Print the Fréchet distance (FID) between two feature-statistics files (.npz with mu (d,) and sigma (d, d), as pytorch-fid saves them) as one JSON line: {"fid", "a", "b", "dim"}.',
  )
  .argument('<a>', 'first statistics file (.npz)')
  .argument('<b>', 'second statistics file (.npz)')
  .addOption(new Option('--method <kind>', "factor of a's covariance used to symmetrise the product").choices(['cholesky', 'eigh']).default('cholesky'))
  .action((a: string, b: string, options: { method: 'cholesky' | 'eigh' }) => {
    console.log(JSON.stringify(frechetCommand(a, b, { method: options.method })));
  });

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`mdm-eval: ${error.message}`);
  process.exit(1);
});
