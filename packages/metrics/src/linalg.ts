/** Dense float64 linear algebra (row-major Float64Arrays), one file per problem. */
export { EPS, type GemmOptions, type SquareMatrix, gemmNT, gemmNTStrided, symmetrized, transpose } from './matrix.js';
export {
  type SymmetricEigen,
  type Tridiagonal,
  sqrtmPsd,
  symmetricEigen,
  symmetricEigenvalues,
  tridiagonalEigen,
  tridiagonalize,
} from './symmetric-eigen.js';
export { type PivotedCholesky, pivotedCholesky } from './cholesky.js';
