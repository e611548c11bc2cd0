// Command scheduler is Dapr's scheduler service (reminders, jobs, workflow
// timers), built unchanged.
package main

import "github.com/dapr/dapr/cmd/scheduler/app"

func main() { app.Run() }
