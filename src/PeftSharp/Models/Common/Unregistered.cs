namespace PeftSharp.Models.Common;

/// <summary>
/// Holds a reference that <c>RegisterComponents()</c> must not see: a module field (or auto-property backing field)
/// of a module type would be registered a second time under the field's name, duplicating its parameters in
/// <c>named_parameters()</c> and the state dict.
/// </summary>
internal sealed class Unregistered<T>(T value)
{
    public T Value { get; } = value;
}
