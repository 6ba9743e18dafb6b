module http-autoinstrument.invalid/sdk

go 1.24
