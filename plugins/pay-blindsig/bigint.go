package blindsig

import "math/big"

type bigInt = big.Int
