/** The variable that puts the app in maintenance mode (`outage start` sets it, `outage recover` removes it). */
export const MAINTENANCE_VAR = 'MAINTENANCE_MODE';
