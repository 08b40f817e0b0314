// The page's settings from the server (`GET /api/config`), shared through context.
import { createContext, useContext } from "react";
import { DEFAULT_UI_CONFIG, type UiConfig } from "./api/types";

export const ConfigContext = createContext<UiConfig>(DEFAULT_UI_CONFIG);

export const useConfig = (): UiConfig => useContext(ConfigContext);
