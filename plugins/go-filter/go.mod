module go-filter

go 1.24

require http-autoinstrument.invalid/sdk v0.0.0

replace http-autoinstrument.invalid/sdk => ../../guest-sdk/go
