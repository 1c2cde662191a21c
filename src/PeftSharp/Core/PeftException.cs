namespace PeftSharp;

/// <summary>
/// The one exception family PeftSharp throws for bad input (files, configs, shapes, names). Messages name the file,
/// tensor or module involved and give expected against found, so a user can act on one line.
/// </summary>
public class PeftException : Exception
{
    public PeftException(string message) : base(message) { }

    public PeftException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A malformed or unreadable safetensors file.</summary>
public sealed class SafetensorsException : PeftException
{
    public SafetensorsException(string message) : base(message) { }

    public SafetensorsException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An adapter_config.json or config.json that is malformed, wrongly typed or inconsistent.</summary>
public sealed class ConfigException : PeftException
{
    public ConfigException(string message) : base(message) { }

    public ConfigException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An adapter or checkpoint whose names or shapes do not fit the model it is applied to.</summary>
public sealed class ModelMismatchException : PeftException
{
    public ModelMismatchException(string message) : base(message) { }
}
