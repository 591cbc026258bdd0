module github.com/slurmgate/slurmgate

go 1.26

require (
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/urfave/cli/v3 v3.14.0 // indirect
)
