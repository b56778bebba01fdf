import FlashGrad
